"""Which browser origins may call the API and open streams (no I/O)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sitewright_gateway.web.origins import normalize_origin, origin_allowed


def settings(cors: list[str] = (), public_url: str = "") -> SimpleNamespace:
    return SimpleNamespace(cors_origins=[normalize_origin(o) if o != "*" else o for o in cors], public_url=public_url)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("https://App.Example.com", "https://app.example.com"),
        ("https://app.example.com:443/", "https://app.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:80", "http://[::1]"),
    ],
)
def test_origins_compare_in_one_normal_form(raw, normal):
    assert normalize_origin(raw) == normal


@pytest.mark.parametrize("bad", ["app.example.com", "ftp://x", "https://x/path", "null", "https://"])
def test_what_is_not_an_origin_is_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError, match="scheme://host"):
        normalize_origin(bad)


@pytest.mark.parametrize(
    ("origin", "host", "cfg", "allowed"),
    [
        (None, "gw:8000", settings(), True),  # not a browser: the API key decides
        ("http://gw:8000", "gw:8000", settings(), True),  # the page the gateway served itself
        ("https://gw", "gw:443", settings(), True),
        (
            "https://sitewright.example",
            "10.0.0.5:8000",
            settings(public_url="https://sitewright.example/"),
            True,
        ),  # behind a proxy
        ("https://evil.example", "gw:8000", settings(), False),
        ("http://gw:8001", "gw:8000", settings(), False),  # another port is another origin
        ("http://gw.evil.example:8000", "gw:8000", settings(), False),
        ("null", "gw:8000", settings(), False),  # sandboxed frames and file:// pages
        ("https://app.example", "gw:8000", settings(cors=["https://app.example"]), True),
        ("https://APP.example:443", "gw:8000", settings(cors=["https://app.example"]), True),
        ("http://app.example", "gw:8000", settings(cors=["https://app.example"]), False),  # scheme matters
        ("https://anything.example", "gw:8000", settings(cors=["*"]), True),
        ("https://evil.example", None, settings(), False),
    ],
)
def test_origin_rules(origin, host, cfg, allowed):
    assert origin_allowed(origin, host, cfg) is allowed


def test_the_gateway_settings_refuse_a_malformed_cors_origin():
    from pydantic import ValidationError

    from sitewright_gateway.config import GatewaySettings

    with pytest.raises(ValidationError, match="scheme://host"):
        GatewaySettings(kafka_bootstrap="k:1", mongo_url="mongodb://m", env="local", cors_origins=["app.example"])
    ok = GatewaySettings(
        kafka_bootstrap="k:1", mongo_url="mongodb://m", env="local", cors_origins=["https://App.example/"]
    )
    assert ok.cors_origins == ["https://app.example"]
