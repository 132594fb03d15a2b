"""The crawler service on the real broker: progress, failure codes, many jobs at once, cancellation."""

from __future__ import annotations

import time
from typing import Any

from sitewright_contracts import Topics, decode, uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import JobOptions
from sitewright_crawler.config import CrawlerSettings
from sitewright_crawler.main import create_app as crawler_app
from sitewright_devstack.fixture_site import FixtureSite
from sitewright_runtime.kafka import Publisher
from tests.helpers import read_topic


def settings_for(kafka: str, unique: str, **extra: Any) -> CrawlerSettings:
    values: dict[str, Any] = dict(
        kafka_bootstrap=kafka,
        topic_prefix=f"c{unique}.",
        topic_partitions=2,
        env="local",
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
            records = await read_topic(
                kafka_bootstrap, settings.topics.events, until=has(job.job_id, "crawl.succeeded"), timeout=60
            )
    events = events_of(records, job.job_id)
    progress = [e for e in events if isinstance(e, ev.CrawlProgress)]
    assert len(progress) >= 2
    values = [p.data.progress for p in progress]
    assert all(10 <= v <= 30 for v in values) and values == sorted(values)
    gaps = [(b.occurred_at - a.occurred_at).total_seconds() for a, b in zip(progress, progress[1:])]
    assert min(gaps) >= 0.45, gaps  # about one per interval, not one per page
    took = (events[-1].occurred_at - next(e for e in events if e.type == "crawl.started").occurred_at).total_seconds()
    assert len(progress) <= took / 0.5 + 1


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
    with (
        FixtureSite(sections=2, pages_per_section=3, page_delay_s=1.0) as slow,
        FixtureSite(sections=2, pages_per_section=3) as fast,
    ):
        slow_job = request(slow.url("/"), max_pages=6, concurrency=1, use_sitemap=False)
        fast_job = request(fast.url("/"), max_pages=6, use_sitemap=False)
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, slow_job, fast_job)
            records = await read_topic(
                kafka_bootstrap, settings.topics.events, until=has(fast_job.job_id, "crawl.succeeded"), timeout=60
            )
            assert not has(slow_job.job_id, "crawl.succeeded")(records)  # still crawling
            assert has(slow_job.job_id, "crawl.started")(records)  # and started before the fast one finished
            await read_topic(
                kafka_bootstrap, settings.topics.events, until=has(slow_job.job_id, "crawl.succeeded"), timeout=60
            )


async def test_cancel_stops_a_crawl_in_progress(kafka_bootstrap, unique):
    """The gateway publishes job.cancel_requested and job.cancelled together; the crawl falls silent."""
    settings = settings_for(kafka_bootstrap, unique, progress_interval_s=0)
    slow_site = FixtureSite(sections=4, pages_per_section=5, page_delay_s=0.5)
    # The sentinel takes about two seconds: long enough for a crawl that ignored the cancel to show it.
    sentinel_site = FixtureSite(sections=1, pages_per_section=3, page_delay_s=0.5)
    with slow_site as slow, sentinel_site as other:
        job = request(slow.url("/"), max_pages=40, concurrency=1, use_sitemap=False)
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, job)
            await read_topic(
                kafka_bootstrap, settings.topics.events, until=has(job.job_id, "crawl.progress"), timeout=30
            )
            cancel = ev.JobCancelRequested(job_id=job.job_id, producer="gateway")
            asked = time.monotonic()
            await publish(
                kafka_bootstrap, settings.topic_prefix, cancel, ev.JobCancelled(job_id=job.job_id, producer="gateway")
            )
            sentinel = request(other.url("/"), max_pages=4, concurrency=1, use_sitemap=False)
            await publish(kafka_bootstrap, settings.topic_prefix, sentinel)
            records = await read_topic(
                kafka_bootstrap, settings.topics.events, until=has(sentinel.job_id, "crawl.succeeded"), timeout=60
            )
            finished = time.monotonic()
        last_request = max(r.at for r in slow.requests)
    assert finished - asked > 1.5  # the sentinel gave a running crawl time to go on
    assert last_request - asked < 1.5  # but the cancelled one stopped at once (at most the page in flight)
    events = events_of(records, job.job_id)
    crawler_events = [e for e in events if e.producer == "crawler"]
    assert not {"crawl.succeeded", "crawl.failed"} & {e.type for e in crawler_events}
    cancelled_at = next(e.occurred_at for e in events if e.type == "job.cancel_requested")
    assert len([e for e in crawler_events if e.occurred_at > cancelled_at]) <= 1  # the page in flight, at most
    assert [e.type for e in events].count("job.cancelled") == 1  # the gateway's only: the crawler adds none


async def test_a_request_after_its_cancel_does_not_crawl(kafka_bootstrap, unique):
    """A request seen after its job's cancel (redelivered after a rebalance, say) starts no crawl."""
    settings = settings_for(kafka_bootstrap, unique)
    with FixtureSite(sections=1, pages_per_section=2) as site:
        job = request(site.url("/"))
        async with crawler_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, ev.JobCancelRequested(job_id=job.job_id), job)
            sentinel = request(site.url("/about"), max_depth=0)
            await publish(kafka_bootstrap, settings.topic_prefix, sentinel)
            records = await read_topic(
                kafka_bootstrap, settings.topics.events, until=has(sentinel.job_id, "crawl.succeeded")
            )
        assert [r.path for r in site.requests] == ["/robots.txt", "/about"]  # only the sentinel's
    assert [e.type for e in events_of(records, job.job_id)] == ["job.cancel_requested", "job.requested"]
