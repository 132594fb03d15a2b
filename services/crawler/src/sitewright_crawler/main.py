"""The crawler's app factory: consumes job requests and crawl retries, emits crawl events."""

from __future__ import annotations

import asyncio

import httpx
from sitewright_runtime.consumer import KeyedConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.netguard import AddressGuard
from sitewright_runtime.settings import load_settings
from sitewright_runtime.worker import Worker

from .config import CrawlerSettings
from .handlers import CrawlHandlers


def create_app(settings: CrawlerSettings) -> Worker:
    publisher = Publisher(settings.kafka_bootstrap, client_id="crawler", topics=settings.topics)
    # Redirects are followed by the crawler itself, so every hop passes the address guard.
    client = httpx.AsyncClient(follow_redirects=False, timeout=settings.request_timeout_s, trust_env=False)
    handlers = CrawlHandlers(settings, client, AddressGuard(settings.allow_cidrs))
    consumer = KeyedConsumer(
        bootstrap=settings.kafka_bootstrap, topic=settings.topics.events, group=settings.crawler_group, name="crawler",
        handlers={"job.requested": handlers.on_job_requested, "job.retry_requested": handlers.on_retry_requested},
        publisher=publisher, max_in_flight=settings.max_in_flight, handler_attempts=settings.handler_attempts,
    )
    return Worker(name="crawler", settings=settings, publisher=publisher, consumers=[consumer], on_stop=[client.aclose], stage="crawl")


def run() -> None:
    asyncio.run(create_app(load_settings(CrawlerSettings)).serve())
