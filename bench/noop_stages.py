"""The crawler and the generator with stage handlers that do no work: the benchmark's Tier A (framework cost).

    python -m bench.noop_stages crawler|generator

Each is the product's own app, `create_app` of `sitewright_crawler.main` / `sitewright_generator.main`, given
these handlers instead of the real ones: the same consumer, publisher, control listener and settings.
Only the handlers differ: each answers its input at once with the next event, carrying the smallest
payload the contracts accept,

- the crawler: `job.requested` (or a crawl retry) -> `crawl.succeeded` with a crawl of one page, the
  start URL and nothing else;
- the generator: `crawl.succeeded` (or a generate retry) -> `job.completed` with a one-section result,

with event ids derived from the cause (`derived_uuid7`) as the real handlers derive them, and the job's
`notify` targets and URL passed on to the outcome as they do. No crawl.started, generation.started or
parsing.started: one event per stage, as each stage of the peers' noop workload enqueues one message.
Cancels are consumed and do nothing (there is no work to stop).

Bench-only: the devstack starts these instead of `python -m sitewright_crawler|generator` when
`start_bench(noop_stages=True)` asks (`StackConfig.commands`); nothing in the product starts them.
"""

from __future__ import annotations

import sys

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, NotifyTarget, PageSummary, SeoResult
from sitewright_crawler import main as crawler_main
from sitewright_crawler.config import CrawlerSettings
from sitewright_generator import main as generator_main
from sitewright_generator.config import GeneratorSettings
from sitewright_runtime.consumer import HandlerContext
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
    """The product's crawler (`sitewright_crawler.main.create_app`) with `NoopCrawl` for its handlers."""
    return crawler_main.create_app(settings, NoopCrawl())


def generator_app(settings: GeneratorSettings) -> Worker:
    """The product's generator (`sitewright_generator.main.create_app`) with `NoopGenerate` and no provider."""
    return generator_main.create_app(settings, NoopGenerate())


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
