"""Thin handlers: turn a request into a crawl, and the crawl's outcome into events."""

from __future__ import annotations

import time
from dataclasses import replace

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import JobOptions, NotifyTarget
from sitewright_runtime.consumer import HandlerContext
from sitewright_runtime.logs import get_logger
from sitewright_runtime.metrics import STAGE_DURATION
from sitewright_runtime.netguard import AddressGuard
from sitewright_runtime.running import RunningWork, WorkCancelled

from .clients import ClientFactory
from .config import CrawlerSettings
from .crawl import CrawlError, CrawlLimits, crawl
from .robots import RobotsCache

log = get_logger(__name__)
PRODUCER = "crawler"


class CrawlHandlers:
    def __init__(self, settings: CrawlerSettings, new_client: ClientFactory, guard: AddressGuard):
        self.settings = settings
        self.new_client = new_client
        self.guard = guard
        self.running = RunningWork()
        self.robots = RobotsCache(settings.robots_cache_s)

    async def on_job_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobRequested)
        await self.run(event, event.data.url, event.data.options, delivery, notify=event.data.notify)

    async def on_retry_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobRetryRequested)
        if event.data.stage == "crawl" and event.data.url:
            await self.run(
                event, event.data.url, event.data.options or JobOptions(), delivery, notify=event.data.notify
            )

    async def on_cancel_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        """Stop the job's crawl if it runs here; a later request for the job will not start one.

        Nothing is emitted: the gateway publishes job.cancelled with the request, and the
        projector ends the job on it; a stopped crawl only has to fall silent.
        """
        assert isinstance(event, ev.JobCancelRequested)
        if self.running.cancel(event):
            log.info("crawl_cancelled", job_id=event.job_id)

    async def run(
        self,
        cause: ev.Event,
        url: str,
        options: JobOptions,
        delivery: HandlerContext,
        *,
        notify: list[NotifyTarget] | None = None,
    ) -> None:
        """Crawl for one (job, attempt). Output ids derive from the cause, so a redelivery emits duplicates
        that consumers drop rather than new facts. `notify` travels on to the job's outcome."""
        common = dict(job_id=cause.job_id, tenant=cause.tenant, attempt=cause.attempt, producer=PRODUCER)
        limits = CrawlLimits.from_options(options, request_timeout_s=self.settings.request_timeout_s)
        limits = replace(limits, concurrency=min(limits.concurrency, self.settings.per_job_concurrency))
        progress = _Progress(cause, common, delivery, self.settings.progress_interval_s)
        started = time.monotonic()
        try:
            context = await self.running.run(cause.job_id, self._crawl(cause, url, limits, common, delivery, progress))
        except WorkCancelled:
            STAGE_DURATION.labels("crawl", "cancelled").observe(time.monotonic() - started)
            log.info("crawl_stopped_by_cancel", job_id=cause.job_id)
            return
        except CrawlError as exc:
            STAGE_DURATION.labels("crawl", "failed").observe(time.monotonic() - started)
            log.info("crawl_failed", job_id=cause.job_id, code=exc.code, error=exc.message)
            await delivery.emit(
                ev.CrawlFailed(
                    event_id=derived_uuid7(cause.event_id, "crawl.failed"),
                    data=ev.StageFailedData(error=exc.info()),
                    **common,
                )
            )
            return
        STAGE_DURATION.labels("crawl", "succeeded").observe(time.monotonic() - started)
        await delivery.emit(
            ev.CrawlSucceeded(
                event_id=derived_uuid7(cause.event_id, "crawl.succeeded"),
                data=ev.CrawlSucceededData(crawl=context, notify=notify),
                **common,
            )
        )

    async def _crawl(
        self,
        cause: ev.Event,
        url: str,
        limits: CrawlLimits,
        common: dict,
        delivery: HandlerContext,
        progress: _Progress,
    ):
        await delivery.emit(
            ev.CrawlStarted(
                event_id=derived_uuid7(cause.event_id, "crawl.started"), data=ev.CrawlStartedData(url=url), **common
            )
        )
        async with self.new_client() as client:
            return await crawl(
                url,
                limits,
                client=client,
                guard=self.guard,
                user_agent=self.settings.user_agent,
                on_progress=progress,
                robots_cache=self.robots,
            )


class _Progress:
    """crawl.progress at most once per interval per job, mapped onto the crawl's 10-30 % band.

    The first comes one interval after the start: a crawl shorter than that (one page) goes from
    crawl.started to crawl.succeeded with no progress event, an event fewer on every hop."""

    def __init__(self, cause: ev.Event, common: dict, delivery: HandlerContext, interval_s: float):
        self.cause, self.common, self.delivery, self.interval_s = cause, common, delivery, interval_s
        self.last = time.monotonic()
        self.sent = 0

    async def __call__(self, done: int, estimated: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return
        self.last, self.sent = now, self.sent + 1
        progress = min(10 + int(20 * done / max(estimated, 1)), 30)
        await self.delivery.emit(
            ev.CrawlProgress(
                event_id=derived_uuid7(self.cause.event_id, "crawl.progress", self.sent),
                data=ev.CrawlProgressData(pages_done=done, pages_estimated=estimated, progress=progress),
                **self.common,
            )
        )
