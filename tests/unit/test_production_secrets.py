"""Services refuse to start in production with an empty or default secret, naming the variable (no I/O)."""

from __future__ import annotations

import pytest

from sitewright_gateway.config import GatewaySettings
from sitewright_notifier.config import NotifierSettings
from sitewright_runtime.settings import SettingsError, load_settings

REQUIRED = {
    "SITEWRIGHT_KAFKA_BOOTSTRAP": "k:9092",
    "SITEWRIGHT_MONGO_URL": "mongodb://m:27017",
    "SITEWRIGHT_LINK_SECRET": "Zt8q2Lw9VbX4mR7cN1yK5pD3",  # its own check is tested with the links
}
GOOD_KEY = "sw_Xq3v9QvY0m3o7b5hA1wS8kZrT2eN6cUd"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("sw_changeme", "placeholder"),
        ("sw_CHANGEME", "placeholder"),
        ("sw_test", "placeholder"),
        ("sw_aaaaaaaaaaaaaaaaaaaa", "placeholder"),
        ("sw_short1", "shorter than 16"),
        ("", "is empty"),
    ],
)
def test_production_refuses_a_weak_bootstrap_key_and_names_the_variable(env, value, why):
    env.setenv("SITEWRIGHT_BOOTSTRAP_API_KEY", value)
    with pytest.raises(SettingsError) as refused:
        load_settings(GatewaySettings)
    message = str(refused.value)
    assert "SITEWRIGHT_BOOTSTRAP_API_KEY" in message and why in message, message
    if why == "shorter than 16":
        assert value not in message, "a secret that is not a placeholder is never printed"


def test_production_starts_with_a_real_secret_or_none(env):
    assert load_settings(GatewaySettings).bootstrap_api_key is None  # unset: no bootstrap key, nothing to refuse
    env.setenv("SITEWRIGHT_BOOTSTRAP_API_KEY", GOOD_KEY)
    assert load_settings(GatewaySettings).bootstrap_api_key.get_secret_value() == GOOD_KEY


def test_local_mode_accepts_a_weak_key_for_development(env):
    env.setenv("SITEWRIGHT_ENV", "local")
    env.setenv("SITEWRIGHT_BOOTSTRAP_API_KEY", "sw_changeme")
    assert load_settings(GatewaySettings).env == "local"


def test_a_bootstrap_key_without_the_key_prefix_is_refused_everywhere(env):
    env.setenv("SITEWRIGHT_ENV", "local")
    env.setenv("SITEWRIGHT_BOOTSTRAP_API_KEY", "just-some-long-random-string-123")
    with pytest.raises(SettingsError, match="SITEWRIGHT_BOOTSTRAP_API_KEY is invalid: .*starts with `sw_`"):
        load_settings(GatewaySettings)


@pytest.mark.parametrize("value", ["changeme", "secret", "password"])
def test_the_notifier_refuses_a_placeholder_sms_token(env, value):
    env.setenv("SITEWRIGHT_SMS_AUTH_TOKEN", value)
    with pytest.raises(SettingsError, match="SITEWRIGHT_SMS_AUTH_TOKEN is a placeholder"):
        load_settings(NotifierSettings)
    env.setenv("SITEWRIGHT_ENV", "local")
    load_settings(NotifierSettings)


def test_every_problem_is_named_at_once(env):
    env.setenv("SITEWRIGHT_SMTP_PASSWORD", "")
    env.setenv("SITEWRIGHT_SMS_AUTH_TOKEN", "changeme")
    with pytest.raises(SettingsError) as refused:
        load_settings(NotifierSettings)
    assert "SITEWRIGHT_SMTP_PASSWORD is empty" in str(refused.value)
    assert "SITEWRIGHT_SMS_AUTH_TOKEN is a placeholder" in str(refused.value)
    assert "openssl rand" in str(refused.value), "the message says how to fix it"
