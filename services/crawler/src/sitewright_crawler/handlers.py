"""Thin handlers: turn a request into a crawl, and the crawl's outcome into events."""

from __future__ import annotations

import time

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import JobOptions
from sitewright_runtime.consumer import Delivery
from sitewright_runtime.logs import get_logger
from sitewright_runtime.metrics import STAGE_DURATION
from sitewright_runtime.netguard import AddressGuard

from .clients import ClientFactory
from .config import CrawlerSettings
from .crawl import CrawlError, CrawlLimits, crawl

log = get_logger(__name__)
PRODUCER = "crawler"


class CrawlHandlers:
    def __init__(self, settings: CrawlerSettings, new_client: ClientFactory, guard: AddressGuard):
        self.settings = settings
        self.new_client = new_client
        self.guard = guard

    async def on_job_requested(self, event: ev.Event, delivery: Delivery) -> None:
        assert isinstance(event, ev.JobRequested)
        await self.run(event, event.data.url, event.data.options, delivery)

    async def on_retry_requested(self, event: ev.Event, delivery: Delivery) -> None:
        assert isinstance(event, ev.JobRetryRequested)
        if event.data.stage == "crawl" and event.data.url:
            await self.run(event, event.data.url, event.data.options or JobOptions(), delivery)

    async def run(self, cause: ev.Event, url: str, options: JobOptions, delivery: Delivery) -> None:
        """Crawl for one (job, attempt). Output ids derive from the cause, so a redelivery emits duplicates
        that consumers drop rather than new facts."""
        common = dict(job_id=cause.job_id, tenant=cause.tenant, attempt=cause.attempt, producer=PRODUCER)
        await delivery.emit(
            ev.CrawlStarted(event_id=derived_uuid7(cause.event_id, "crawl.started"), data=ev.CrawlStartedData(url=url), **common)
        )
        limits = CrawlLimits(
            max_pages=options.max_pages, max_depth=options.max_depth, timeout_s=options.timeout_s,
            request_timeout_s=self.settings.request_timeout_s, concurrency=self.settings.per_job_concurrency,
        )
        last_progress = 0.0
        sent = 0

        async def on_progress(done: int, estimated: int) -> None:
            nonlocal last_progress, sent
            now = time.monotonic()
            if now - last_progress < self.settings.progress_interval_s:
                return
            last_progress, sent = now, sent + 1
            progress = 10 + int(20 * done / max(estimated, 1))
            await delivery.emit(
                ev.CrawlProgress(
                    event_id=derived_uuid7(cause.event_id, "crawl.progress", sent),
                    data=ev.CrawlProgressData(pages_done=done, pages_estimated=estimated, progress=min(progress, 30)),
                    **common,
                )
            )

        started = time.monotonic()
        try:
            async with self.new_client() as client:
                context = await crawl(
                    url, limits, client=client, guard=self.guard, user_agent=self.settings.user_agent, on_progress=on_progress
                )
        except CrawlError as exc:
            STAGE_DURATION.labels("crawl", "failed").observe(time.monotonic() - started)
            log.info("crawl_failed", job_id=cause.job_id, code=exc.code, error=exc.message)
            await delivery.emit(
                ev.CrawlFailed(
                    event_id=derived_uuid7(cause.event_id, "crawl.failed"), data=ev.StageFailedData(error=exc.info()), **common
                )
            )
            return
        STAGE_DURATION.labels("crawl", "succeeded").observe(time.monotonic() - started)
        await delivery.emit(
            ev.CrawlSucceeded(
                event_id=derived_uuid7(cause.event_id, "crawl.succeeded"), data=ev.CrawlSucceededData(crawl=context), **common
            )
        )
