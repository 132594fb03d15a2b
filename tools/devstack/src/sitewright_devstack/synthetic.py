"""A job's events without running the workers: what tests and benchmarks publish to drive a job.

`job_story` is one successful run as the crawler and generator would report
it, with many progress events, so a job stream has many versions to carry.
"""

from __future__ import annotations

from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, PageSummary, SeoResult

# Versions a job reaches through `job_story` after its request (version 1).
STORY_VERSIONS = 65


def result_for(url: str) -> SeoResult:
    return SeoResult.model_validate(
        {
            "meta": {"title": "Synthetic site", "description": f"Generated for {url}"},
            "content": [{"heading": "About", "body": "A site driven by synthetic events."}],
            "faq": [{"question": "Is this real?", "answer": "It is a test."}],
            "schema": {"@context": "https://schema.org", "@type": "WebSite", "url": url},
        }
    )


def job_story(job_id: str, url: str, tenant: str = "default") -> list[ev.Event]:
    """crawl.started, 20 crawl.progress, crawl.succeeded, generation.started, 40 generation.progress,
    parsing.started, job.completed: each one a new version of the job (2 to 66)."""
    c = dict(job_id=job_id, tenant=tenant, producer="synthetic")
    crawl = CrawlContext(start_url=url, pages=[PageSummary(url=url, title="Synthetic")])
    return [
        ev.CrawlStarted(data=ev.CrawlStartedData(url=url), **c),
        *(
            ev.CrawlProgress(data=ev.CrawlProgressData(pages_done=p - 10, pages_estimated=20, progress=p), **c)
            for p in range(11, 31)
        ),
        ev.CrawlSucceeded(data=ev.CrawlSucceededData(crawl=crawl), **c),
        ev.GenerationStarted(data=ev.GenerationStartedData(provider="synthetic", model="none"), **c),
        *(ev.GenerationProgress(data=ev.GenerationProgressData(progress=p), **c) for p in range(41, 81)),
        ev.ParsingStarted(**c),
        ev.JobCompleted(data=ev.JobCompletedData(result=result_for(url), pages_crawled=1, provider="synthetic"), **c),
    ]
