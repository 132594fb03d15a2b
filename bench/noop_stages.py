"""The crawler and the generator with stage handlers that do no work: the benchmark's Tier A (framework cost).

    python -m bench.noop_stages crawler|generator

Each runs the product's Worker shell as `sitewright_crawler.main` / `sitewright_generator.main` wire it: the
same KeyedConsumer (topic, group, consumer name, handled event types, in-flight limit, handler attempts,
fetch wait, unordered cancels), the same Publisher and the same pause/resume control listener, with the
same `SITEWRIGHT_*` settings. Only the handlers differ: each answers its input at once with the next
event, carrying the smallest payload the contracts accept,

- the crawler: `job.requested` (or a crawl retry) -> `crawl.succeeded` with a crawl of one page, the
  start URL and nothing else;
- the generator: `crawl.succeeded` (or a generate retry) -> `job.completed` with a one-section result,

with event ids derived from the cause (`derived_uuid7`) as the real handlers derive them, and the job's
`notify` targets and URL passed on to the outcome as they do. No crawl.started, generation.started or
parsing.started: one event per stage, as each stage of the peers' noop workload enqueues one message.
Cancels are consumed and do nothing (there is no work to stop).

Bench-only: the devstack starts these instead of `python -m sitewright_crawler|generator` when
`start_bench(noop_stages=True)` asks (`StackConfig.commands`); nothing in the product starts them.
`tests/unit/test_bench_tier_a.py` checks the wiring against the product's `create_app`.
"""

from __future__ import annotations

import sys

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, NotifyTarget, PageSummary, SeoResult
from sitewright_crawler.config import CrawlerSettings
from sitewright_generator.config import GeneratorSettings
from sitewright_runtime.consumer import HandlerContext, KeyedConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.loop import run as run_loop
from sitewright_runtime.settings import load_settings
from sitewright_runtime.worker import Worker

# The smallest result `SeoResult` accepts: a title, a description, one section, a typed schema.org node.
NOOP_RESULT = SeoResult.model_validate(
    {
        "meta": {"title": "x", "description": "x"},
        "content": [{"heading": "x", "body": "x"}],
        "schema": {"@context": "https://schema.org", "@type": "WebPage"},
    }
)
NOOP_PROVIDER = "noop"


class NoopCrawl:
    """The crawler's handlers, minus the crawl."""

    async def on_job_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobRequested)
        await delivery.emit(crawled(event, event.data.url, event.data.notify))

    async def on_retry_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobRetryRequested)
        if event.data.stage == "crawl" and event.data.url:
            await delivery.emit(crawled(event, event.data.url, event.data.notify))

    async def on_cancel_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobCancelRequested)


class NoopGenerate:
    """The generator's handlers, minus the generation."""

    async def on_crawl_succeeded(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.CrawlSucceeded)
        # The generate stage numbers its own attempts: the first is 1, as in the real handler.
        await delivery.emit(completed(event, event.data.crawl, 1, event.data.notify))

    async def on_retry_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobRetryRequested)
        if event.data.stage == "generate" and event.data.crawl is not None:
            await delivery.emit(completed(event, event.data.crawl, event.attempt, event.data.notify))

    async def on_cancel_requested(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobCancelRequested)


def crawled(cause: ev.Event, url: str, notify: list[NotifyTarget] | None) -> ev.CrawlSucceeded:
    """crawl.succeeded for `cause`: a crawl of the start page alone, known by its URL only."""
    return ev.CrawlSucceeded(
        event_id=derived_uuid7(cause.event_id, "crawl.succeeded"),
        job_id=cause.job_id,
        tenant=cause.tenant,
        attempt=cause.attempt,
        producer="crawler",
        data=ev.CrawlSucceededData(crawl=CrawlContext(start_url=url, pages=[PageSummary(url=url)]), notify=notify),
    )


def completed(cause: ev.Event, crawl: CrawlContext, attempt: int, notify: list[NotifyTarget] | None) -> ev.JobCompleted:
    """job.completed for `cause`: the smallest valid result, the site's URL and whom to tell."""
    return ev.JobCompleted(
        event_id=derived_uuid7(cause.event_id, "job.completed"),
        job_id=cause.job_id,
        tenant=cause.tenant,
        attempt=attempt,
        producer="generator",
        data=ev.JobCompletedData(
            result=NOOP_RESULT,
            pages_crawled=len(crawl.pages),
            provider=NOOP_PROVIDER,
            url=crawl.start_url,
            notify=notify,
        ),
    )


def crawler_app(settings: CrawlerSettings) -> Worker:
    """`sitewright_crawler.main.create_app` with `NoopCrawl` for `CrawlHandlers`."""
    publisher = Publisher(settings.kafka_bootstrap, client_id="crawler", topics=settings.topics)
    handlers = NoopCrawl()
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


def generator_app(settings: GeneratorSettings) -> Worker:
    """`sitewright_generator.main.create_app` with `NoopGenerate` for `GenerateHandlers` (and no provider)."""
    publisher = Publisher(settings.kafka_bootstrap, client_id="generator", topics=settings.topics)
    handlers = NoopGenerate()
    consumer = KeyedConsumer(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topics.events,
        group=settings.generator_group,
        name="generator",
        handlers={
            "crawl.succeeded": handlers.on_crawl_succeeded,
            "job.retry_requested": handlers.on_retry_requested,
            "job.cancel_requested": handlers.on_cancel_requested,
        },
        publisher=publisher,
        max_in_flight=settings.max_in_flight,
        handler_attempts=settings.handler_attempts,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        unordered=frozenset({"job.cancel_requested"}),
    )
    return Worker(name="generator", settings=settings, publisher=publisher, consumers=[consumer], stage="generate")


def main(argv: list[str]) -> int:
    if argv == ["crawler"]:
        run_loop(crawler_app(load_settings(CrawlerSettings)).serve())
    elif argv == ["generator"]:
        run_loop(generator_app(load_settings(GeneratorSettings)).serve())
    else:
        print("usage: python -m bench.noop_stages crawler|generator", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
