"""The crawler's app factory: consumes job requests and crawl retries, emits crawl events."""

from __future__ import annotations

from typing import Protocol

from sitewright_contracts import events as ev
from sitewright_runtime.consumer import HandlerContext, KeyedConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.loop import run as run_loop
from sitewright_runtime.netguard import AddressGuard
from sitewright_runtime.settings import load_settings
from sitewright_runtime.worker import Worker

from .clients import client_factory
from .config import CrawlerSettings
from .handlers import CrawlHandlers


class CrawlStage(Protocol):
    """What the crawler's consumer calls: `CrawlHandlers`, or the benchmark's no-work stage (`bench/noop_stages.py`)."""

    async def on_job_requested(self, event: ev.Event, context: HandlerContext) -> None: ...
    async def on_retry_requested(self, event: ev.Event, context: HandlerContext) -> None: ...
    async def on_cancel_requested(self, event: ev.Event, context: HandlerContext) -> None: ...


def create_app(settings: CrawlerSettings, handlers: CrawlStage | None = None) -> Worker:
    publisher = Publisher(settings.kafka_bootstrap, client_id="crawler", topics=settings.topics)
    if handlers is None:
        handlers = CrawlHandlers(settings, client_factory(settings), AddressGuard.for_settings(settings))
    consumer = KeyedConsumer(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topics.events,
        group=settings.crawler_group,
        name="crawler",
        handlers={
            "job.requested": handlers.on_job_requested,
            "job.retry_requested": handlers.on_retry_requested,
            "job.cancel_requested": handlers.on_cancel_requested,
        },
        publisher=publisher,
        max_in_flight=settings.max_in_flight,
        handler_attempts=settings.handler_attempts,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        unordered=frozenset({"job.cancel_requested"}),
    )
    return Worker(name="crawler", settings=settings, publisher=publisher, consumers=[consumer], stage="crawl")


def run() -> None:
    run_loop(create_app(load_settings(CrawlerSettings)).serve())
