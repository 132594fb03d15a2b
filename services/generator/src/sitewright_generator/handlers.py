"""Thin handlers: turn a crawl into generated, parsed and validated content, or a failure."""

from __future__ import annotations

import time

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, ErrorInfo
from sitewright_runtime.consumer import Delivery
from sitewright_runtime.logs import get_logger
from sitewright_runtime.metrics import STAGE_DURATION

from .config import GeneratorSettings
from .offline import OfflineProvider
from .parse import OutputInvalid, parse_output

log = get_logger(__name__)
PRODUCER = "generator"


class GenerateHandlers:
    def __init__(self, settings: GeneratorSettings, provider: OfflineProvider):
        self.settings = settings
        self.provider = provider

    async def on_crawl_succeeded(self, event: ev.Event, delivery: Delivery) -> None:
        assert isinstance(event, ev.CrawlSucceeded)
        # The generate stage numbers its own attempts: the first is 1, whatever the crawl's was.
        await self.run(event, event.data.crawl, 1, delivery)

    async def on_retry_requested(self, event: ev.Event, delivery: Delivery) -> None:
        assert isinstance(event, ev.JobRetryRequested)
        if event.data.stage == "generate" and event.data.crawl is not None:
            await self.run(event, event.data.crawl, event.attempt, delivery)

    async def run(self, cause: ev.Event, crawl: CrawlContext, attempt: int, delivery: Delivery) -> None:
        common = dict(job_id=cause.job_id, tenant=cause.tenant, attempt=attempt, producer=PRODUCER)

        def eid(*parts: object) -> str:
            return derived_uuid7(cause.event_id, *parts)

        started = time.monotonic()
        language = crawl.pages[0].language if crawl.pages else None
        await delivery.emit(
            ev.GenerationStarted(
                event_id=eid("generation.started"),
                data=ev.GenerationStartedData(provider=self.provider.name, model=self.provider.model), **common,
            )
        )
        chunks: list[str] = []
        size, sent, last = 0, 0, time.monotonic()
        async for chunk in self.provider.stream(crawl, language=language):
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() - last >= self.settings.progress_interval_s:
                sent, last = sent + 1, time.monotonic()
                progress = 40 + min(39, int(40 * size / self.settings.expected_output_chars))
                await delivery.emit(
                    ev.GenerationProgress(
                        event_id=eid("generation.progress", sent),
                        data=ev.GenerationProgressData(progress=progress, detail=f"{size} characters written"), **common,
                    )
                )
        await delivery.emit(
            ev.GenerationProgress(
                event_id=eid("generation.progress", "done"),
                data=ev.GenerationProgressData(progress=80, detail=f"{size} characters written"), **common,
            ),
            ev.ParsingStarted(event_id=eid("parsing.started"), **common),
        )
        try:
            result = parse_output("".join(chunks))
        except OutputInvalid as exc:
            STAGE_DURATION.labels("generate", "failed").observe(time.monotonic() - started)
            log.warning("output_invalid", job_id=cause.job_id, code=exc.code, error=exc.message)
            await delivery.emit(
                ev.GenerationFailed(
                    event_id=eid("generation.failed"),
                    data=ev.StageFailedData(error=ErrorInfo(code=exc.code, message=exc.message, retryable=True)), **common,
                )
            )
            return
        STAGE_DURATION.labels("generate", "succeeded").observe(time.monotonic() - started)
        await delivery.emit(
            ev.JobCompleted(
                event_id=eid("job.completed"),
                data=ev.JobCompletedData(result=result, pages_crawled=len(crawl.pages), provider=self.provider.name),
                **common,
            )
        )
