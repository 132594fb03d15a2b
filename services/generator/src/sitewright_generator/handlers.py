"""Thin handlers: turn a crawl into generated, parsed and validated content, or a failure."""

from __future__ import annotations

import time

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, NotifyTarget
from sitewright_runtime.consumer import HandlerContext
from sitewright_runtime.logs import get_logger
from sitewright_runtime.metrics import LLM_TOKENS, STAGE_DURATION
from sitewright_runtime.running import RunningWork, WorkCancelled

from .config import GeneratorSettings
from .generate import GenerationRun, Generator
from .provider import GenerationError

log = get_logger(__name__)
PRODUCER = "generator"


class GenerateHandlers:
    def __init__(self, settings: GeneratorSettings, generator: Generator):
        self.settings = settings
        self.generator = generator
        self.provider = generator.provider
        self.running = RunningWork()

    async def on_crawl_succeeded(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.CrawlSucceeded)
        # The generate stage numbers its own attempts: the first is 1, whatever the crawl's was.
        await self.run(event, event.data.crawl, 1, 0, delivery, notify=event.data.notify)

    async def on_retry_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobRetryRequested)
        if event.data.stage == "generate" and event.data.crawl is not None:
            await self.run(
                event, event.data.crawl, event.attempt, event.data.tokens_spent, delivery, notify=event.data.notify
            )

    async def on_cancel_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        """Stop the job's generation if it runs here (its LLM stream closes); a later one will not start.

        Nothing is emitted: the gateway publishes job.cancelled with the request."""
        assert isinstance(event, ev.JobCancelRequested)
        if self.running.cancel(event):
            log.info("generation_cancelled", job_id=event.job_id)

    async def run(
        self,
        cause: ev.Event,
        crawl: CrawlContext,
        attempt: int,
        tokens_spent: int,
        delivery: HandlerContext,
        *,
        notify: list[NotifyTarget] | None = None,
    ) -> None:
        """Generate for one (job, attempt), unless a cancel of the job stops it: then no more tokens are spent."""
        started = time.monotonic()
        work = self._generate(cause, crawl, attempt, tokens_spent, delivery, notify)
        try:
            await self.running.run(cause.job_id, work)
        except WorkCancelled:
            STAGE_DURATION.labels("generate", "cancelled").observe(time.monotonic() - started)
            log.info("generation_stopped_by_cancel", job_id=cause.job_id)

    async def _generate(
        self,
        cause: ev.Event,
        crawl: CrawlContext,
        attempt: int,
        tokens_spent: int,
        delivery: HandlerContext,
        notify: list[NotifyTarget] | None,
    ) -> None:
        common = dict(job_id=cause.job_id, tenant=cause.tenant, attempt=attempt, producer=PRODUCER)

        def eid(*parts: object) -> str:
            return derived_uuid7(cause.event_id, *parts)

        started = time.monotonic()
        language = crawl.pages[0].language if crawl.pages else None
        await delivery.emit(
            ev.GenerationStarted(
                event_id=eid("generation.started"),
                data=ev.GenerationStartedData(provider=self.provider.name, model=self.provider.model),
                **common,
            )
        )
        sent, last = 0, time.monotonic()

        async def report(progress_of: GenerationRun) -> None:
            # Throttled: a token stream would otherwise mean an event per token.
            nonlocal sent, last
            if time.monotonic() - last < self.settings.progress_interval_s:
                return
            sent, last = sent + 1, time.monotonic()
            expected = self.settings.expected_output_chars * len(progress_of.calls)
            size = progress_of.chars
            await delivery.emit(
                ev.GenerationProgress(
                    event_id=eid("generation.progress", sent),
                    data=ev.GenerationProgressData(
                        progress=40 + min(39, int(40 * size / expected)), detail=f"{size} characters written"
                    ),
                    **common,
                )
            )

        attempt_run = GenerationRun()
        try:
            attempt_run = await self.generator.plan(crawl, language=language, tokens_spent=tokens_spent)
            await self.generator.write(attempt_run, report, tenant=cause.tenant)
            # A series of progress events ends at 80 %; a generation too quick to report any (the first
            # comes one interval after the start) goes straight to parsing, an event fewer on every hop.
            done = (
                [
                    ev.GenerationProgress(
                        event_id=eid("generation.progress", "done"),
                        data=ev.GenerationProgressData(progress=80, detail=f"{attempt_run.chars} characters written"),
                        **common,
                    )
                ]
                if sent
                else []
            )
            await delivery.emit(*done, ev.ParsingStarted(event_id=eid("parsing.started"), **common))
            result = self.generator.finish(attempt_run)
        except GenerationError as exc:
            tokens = self._count(attempt_run)
            STAGE_DURATION.labels("generate", "failed").observe(time.monotonic() - started)
            log.warning(
                "generation_failed",
                job_id=cause.job_id,
                attempt=attempt,
                code=exc.code,
                error=exc.message,
                detail=exc.detail,
                retryable=exc.retryable,
                tokens_in=tokens[0],
                tokens_out=tokens[1],
            )
            await delivery.emit(
                ev.GenerationFailed(
                    event_id=eid("generation.failed"),
                    data=ev.StageFailedData(error=exc.info(), tokens_in=tokens[0], tokens_out=tokens[1]),
                    **common,
                )
            )
            return
        tokens = self._count(attempt_run)
        STAGE_DURATION.labels("generate", "succeeded").observe(time.monotonic() - started)
        await delivery.emit(
            ev.JobCompleted(
                event_id=eid("job.completed"),
                data=ev.JobCompletedData(
                    result=result,
                    pages_crawled=len(crawl.pages),
                    provider=self.provider.name,
                    tokens_in=tokens[0],
                    tokens_out=tokens[1],
                    url=crawl.start_url,
                    notify=notify,
                ),
                **common,
            )
        )

    def _count(self, attempt: GenerationRun) -> tuple[int, int]:
        tokens = attempt.tokens_in, attempt.tokens_out
        for direction, n in zip(("in", "out"), tokens):
            if n:
                LLM_TOKENS.labels(self.provider.name, direction).inc(n)
        return tokens
