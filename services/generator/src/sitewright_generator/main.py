"""The generator's app factory: consumes finished crawls and generate retries, emits the result."""

from __future__ import annotations

import asyncio

from sitewright_runtime.consumer import KeyedConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.settings import load_settings
from sitewright_runtime.worker import Worker

from .config import GeneratorSettings
from .handlers import GenerateHandlers
from .offline import OfflineProvider


def create_app(settings: GeneratorSettings) -> Worker:
    publisher = Publisher(settings.kafka_bootstrap, client_id="generator", topics=settings.topics)
    handlers = GenerateHandlers(settings, OfflineProvider())
    consumer = KeyedConsumer(
        bootstrap=settings.kafka_bootstrap, topic=settings.topics.events, group=settings.generator_group, name="generator",
        handlers={"crawl.succeeded": handlers.on_crawl_succeeded, "job.retry_requested": handlers.on_retry_requested},
        publisher=publisher, max_in_flight=settings.max_in_flight, handler_attempts=settings.handler_attempts,
    )
    return Worker(name="generator", settings=settings, publisher=publisher, consumers=[consumer], stage="generate")


def run() -> None:
    asyncio.run(create_app(load_settings(GeneratorSettings)).serve())
