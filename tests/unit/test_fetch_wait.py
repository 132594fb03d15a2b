"""Every worker's consumer fetches with the configured wait (no I/O: the aiokafka consumer is only built)."""

from __future__ import annotations

import pytest

from sitewright_crawler.config import CrawlerSettings
from sitewright_crawler.main import create_app
from sitewright_runtime.consumer import KeyedConsumer
from sitewright_runtime.kafka import FETCH_MAX_WAIT_MS, new_consumer
from sitewright_runtime.settings import SettingsError, load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SITEWRIGHT_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("SITEWRIGHT_ENV", "local")
    return monkeypatch


async def test_the_wait_defaults_to_the_measured_value_and_reaches_the_stage_consumer(env):
    assert load_settings(CrawlerSettings).fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
    env.setenv("SITEWRIGHT_FETCH_MAX_WAIT_MS", "40")
    [consumer] = [c for c in create_app(load_settings(CrawlerSettings)).consumers if isinstance(c, KeyedConsumer)]
    assert consumer.fetch_max_wait_ms == 40
    assert new_consumer("127.0.0.1:9", "g", "c", fetch_max_wait_ms=consumer.fetch_max_wait_ms)._fetch_max_wait_ms == 40


def test_a_wait_of_zero_is_refused_naming_the_variable(env):
    env.setenv("SITEWRIGHT_FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(SettingsError) as refused:
        load_settings(CrawlerSettings)
    assert "FETCH_MAX_WAIT_MS" in str(refused.value).upper()
