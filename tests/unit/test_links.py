"""Result links: a genuine token opens, an expired one is told apart from a forged one; production needs a real key."""

from __future__ import annotations

import time

import pytest

from sitewright_gateway.config import GatewaySettings
from sitewright_notifier.config import NotifierSettings
from sitewright_runtime.links import INSECURE_LINK_SECRET, LinkError, sign_link, verify_link
from sitewright_runtime.settings import SettingsError, load_settings

SECRET = "a-test-secret-that-is-long-enough"


def test_a_signed_link_verifies_to_its_claims():
    token = sign_link(SECRET, "job-1", "acme", int(time.time()) + 60)
    claims = verify_link(SECRET, token)
    assert (claims.job_id, claims.tenant) == ("job-1", "acme")


def test_an_expired_link_is_refused_as_expired():
    token = sign_link(SECRET, "job-1", "acme", int(time.time()) - 1)
    with pytest.raises(LinkError) as exc:
        verify_link(SECRET, token)
    assert exc.value.expired and "expired" in exc.value.message


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),  # the signature
        lambda t: ("x" if t[0] != "x" else "y") + t[1:],  # the payload
        lambda t: t.replace(".", ""),  # the shape
        lambda t: t + "." + t,
        lambda t: "%%%." + t.split(".")[1],
    ],
)
def test_a_tampered_link_is_refused_and_not_as_expired(tamper):
    token = sign_link(SECRET, "job-1", "acme", int(time.time()) + 60)
    with pytest.raises(LinkError) as exc:
        verify_link(SECRET, tamper(token))
    assert not exc.value.expired


def test_a_later_expiry_cannot_be_forged_into_an_expired_link():
    import base64
    import json

    token = sign_link(SECRET, "job-1", "acme", int(time.time()) - 10)
    payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["e"] += 3600
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    with pytest.raises(LinkError) as exc:
        verify_link(SECRET, f"{forged}.{signature}")
    assert not exc.value.expired and "signature" in exc.value.message


def test_a_link_signed_with_another_key_is_refused():
    token = sign_link("another-secret-of-enough-length", "job-1", "acme", int(time.time()) + 60)
    with pytest.raises(LinkError):
        verify_link(SECRET, token)


@pytest.mark.parametrize("cls", [NotifierSettings, GatewaySettings])
def test_production_refuses_to_start_with_the_default_link_secret(cls, monkeypatch):
    monkeypatch.delenv("SITEWRIGHT_LINK_SECRET", raising=False)
    monkeypatch.delenv("SITEWRIGHT_ENV", raising=False)
    with pytest.raises(SettingsError) as exc:
        load_settings(cls, kafka_bootstrap="k:1", mongo_url="mongodb://m")  # env defaults to production
    assert "SITEWRIGHT_LINK_SECRET" in str(exc.value) and "insecure default" in str(exc.value)

    monkeypatch.setenv("SITEWRIGHT_LINK_SECRET", "a-real-random-secret-from-the-vault")
    settings = load_settings(cls, kafka_bootstrap="k:1", mongo_url="mongodb://m")
    assert settings.link_secret.get_secret_value() != INSECURE_LINK_SECRET
    assert load_settings(
        cls, kafka_bootstrap="k:1", mongo_url="mongodb://m", env="local", link_secret=INSECURE_LINK_SECRET
    )
