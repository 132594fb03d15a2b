"""The crawler service on the real broker: progress, failure codes, many jobs at once, cancellation."""

from __future__ import annotations

import time
from typing import Any

from sitewright_contracts import Topics, decode, derived_uuid7, uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import JobOptions
from sitewright_crawler.config import CrawlerSettings
from sitewright_crawler.main import create_app as crawler_app
from sitewright_devstack.fixture_site import FixtureSite
from sitewright_runtime.kafka import Publisher

from tests.helpers import read_topic


def settings_for(kafka: str, unique: str, **extra: Any) -> CrawlerSettings:
    values: dict[str, Any] = dict(
        kafka_bootstrap=kafka, topic_prefix=f"c{unique}.", topic_partitions=2, env="local",
        crawler_group=f"crawler-{unique}",
    )
    return CrawlerSettings(**(values | extra))


async def publish(kafka: str, prefix: str, *events: ev.Event) -> None:
    publisher = Publisher(kafka, "test", Topics(prefix))
    await publisher.start()
    try:
        await publisher.publish(events)
    finally:
        await publisher.stop()


def request(url: str, **options: Any) -> ev.JobRequested:
    return ev.JobRequested(job_id=uuid7(), data=ev.JobRequestedData(url=url, options=JobOptions(**options)))


def events_of(records: list[Any], job_id: str) -> list[ev.Event]:
    return [decode(r.value) for r in records if r.key == job_id.encode()]


def has(job_id: str, *types: str):
    def check(records: list[Any]) -> bool:
        seen = {e.type for e in events_of(records, job_id)}
        return all(t in seen for t in types)

    return check


async def test_progress_is_throttled_and_stays_in_the_crawl_band(kafka_bootstrap, unique):
    settings = settings_for(kafka_bootstrap, unique, progress_interval_s=0.5)
    with FixtureSite(sections=3, pages_per_section=4, page_delay_s=0.15) as site:
        job = request(site.url("/"), max_pages=14, concurrency=1, use_sitemap=False)
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, job)
            records = await read_topic(kafka_bootstrap, settings.topics.events, until=has(job.job_id, "crawl.succeeded"), timeout=60)
    events = events_of(records, job.job_id)
    progress = [e for e in events if isinstance(e, ev.CrawlProgress)]
    assert len(progress) >= 2
    values = [p.data.progress for p in progress]
    assert all(10 <= v <= 30 for v in values) and values == sorted(values)
    gaps = [(b.occurred_at - a.occurred_at).total_seconds() for a, b in zip(progress, progress[1:])]
    assert min(gaps) >= 0.45, gaps  # about one per interval, not one per page
    crawled = len(events[-1].data.crawl.pages)  # type: ignore[attr-defined]
    assert len(progress) < crawled


async def test_a_blocked_address_fails_the_job_with_a_clear_code(kafka_bootstrap, unique):
    settings = settings_for(kafka_bootstrap, unique, env="production")
    with FixtureSite(sections=1, pages_per_section=1) as site:
        job = request(site.url("/"))
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, job)
            records = await read_topic(kafka_bootstrap, settings.topics.events, until=has(job.job_id, "crawl.failed"))
        assert site.requests == []
    failed = events_of(records, job.job_id)[-1]
    assert isinstance(failed, ev.CrawlFailed)
    assert (failed.data.error.code, failed.data.error.retryable) == ("blocked_address", False)
    assert "private, loopback or reserved" in failed.data.error.message


async def test_a_slow_site_does_not_hold_up_other_jobs(kafka_bootstrap, unique):
    # One partition: both jobs' messages share it, so only key-level concurrency lets the fast one pass.
    settings = settings_for(kafka_bootstrap, unique, topic_partitions=1)
    with FixtureSite(sections=2, pages_per_section=3, page_delay_s=1.0) as slow, FixtureSite(sections=2, pages_per_section=3) as fast:
        slow_job = request(slow.url("/"), max_pages=6, concurrency=1, use_sitemap=False)
        fast_job = request(fast.url("/"), max_pages=6, use_sitemap=False)
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, slow_job, fast_job)
            records = await read_topic(kafka_bootstrap, settings.topics.events, until=has(fast_job.job_id, "crawl.succeeded"), timeout=60)
            assert not has(slow_job.job_id, "crawl.succeeded")(records)  # still crawling
            assert has(slow_job.job_id, "crawl.started")(records)  # and started before the fast one finished
            await read_topic(kafka_bootstrap, settings.topics.events, until=has(slow_job.job_id, "crawl.succeeded"), timeout=60)


async def test_cancel_stops_a_crawl_in_progress(kafka_bootstrap, unique):
    settings = settings_for(kafka_bootstrap, unique, progress_interval_s=0)
    with FixtureSite(sections=4, pages_per_section=5, page_delay_s=0.5) as slow, FixtureSite(sections=1, pages_per_section=2) as fast:
        job = request(slow.url("/"), max_pages=40, concurrency=1, use_sitemap=False)
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, job)
            await read_topic(kafka_bootstrap, settings.topics.events, until=has(job.job_id, "crawl.progress"), timeout=30)
            cancel = ev.JobCancelRequested(job_id=job.job_id, data=ev.JobCancelRequestedData(reason="changed my mind"))
            asked = time.monotonic()
            await publish(kafka_bootstrap, settings.topic_prefix, cancel)
            await read_topic(kafka_bootstrap, settings.topics.events, until=has(job.job_id, "job.cancelled"), timeout=30)
            took = time.monotonic() - asked
            requests_at_cancel = len(slow.requests)
            # A later job runs to its end: by then a crawl that ignored the cancel would have
            # fetched more of the slow site and emitted more events.
            sentinel = request(fast.url("/"), max_pages=3, use_sitemap=False)
            await publish(kafka_bootstrap, settings.topic_prefix, sentinel)
            records = await read_topic(kafka_bootstrap, settings.topics.events, until=has(sentinel.job_id, "crawl.succeeded"))
            assert len(slow.requests) <= requests_at_cancel + 1  # at most the one in flight
    assert took < 5
    events = events_of(records, job.job_id)
    types = [e.type for e in events]
    assert types[-1] == "job.cancelled" and types.count("job.cancelled") == 1
    assert not {"crawl.succeeded", "crawl.failed"} & set(types)
    cancelled = events[-1]
    assert cancelled.event_id == derived_uuid7(cancel.event_id, "job.cancelled")  # the same from any stage
    assert cancelled.data.reason == "changed my mind"  # type: ignore[attr-defined]


async def test_a_request_after_its_cancel_does_not_crawl(kafka_bootstrap, unique):
    """A redelivered request (after a restart, say) for a job cancelled meanwhile does not start a crawl."""
    settings = settings_for(kafka_bootstrap, unique)
    with FixtureSite(sections=1, pages_per_section=2) as site:
        job = request(site.url("/"))
        cancel = ev.JobCancelRequested(job_id=job.job_id)
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, job, cancel)
            await read_topic(kafka_bootstrap, settings.topics.events, until=has(job.job_id, "job.cancelled"))
            requests_before = len(site.requests)
            await publish(kafka_bootstrap, settings.topic_prefix, job)  # the same request again
            sentinel = request(site.url("/about"), max_depth=0)
            await publish(kafka_bootstrap, settings.topic_prefix, sentinel)
            records = await read_topic(kafka_bootstrap, settings.topics.events, until=has(sentinel.job_id, "crawl.succeeded"))
        assert [r.path for r in site.requests[requests_before:]] == ["/robots.txt", "/about"]  # only the sentinel
    types = [e.type for e in events_of(records, job.job_id)]
    assert types.count("job.cancelled") == 2 and len({e.event_id for e in events_of(records, job.job_id) if e.type == "job.cancelled"}) == 1
