"""The benchmark's Tier A: no-work stages wired as the product's, and the figures computed from a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench import noop_stages
from bench.peers import tier_a_ratios
from bench.scenarios.framework import per_job_ms, throughput_from_documents, turned_completed
from sitewright_contracts import derived_uuid7, wire
from sitewright_contracts import events as ev
from sitewright_contracts.models import NotifyTarget
from sitewright_crawler.config import CrawlerSettings
from sitewright_crawler.main import create_app as crawler_create_app
from sitewright_gateway.readmodel.rules import RetryPolicy, project
from sitewright_generator.config import GeneratorSettings
from sitewright_generator.main import create_app as generator_create_app
from sitewright_runtime.consumer import KeyedConsumer
from sitewright_runtime.settings import load_settings

NOTIFY = [NotifyTarget(channel="webhook", target="https://hooks.example/done")]
URL = "http://127.0.0.1:9/"


class Delivery:
    """A HandlerContext that keeps what the handler emits."""

    def __init__(self) -> None:
        self.emitted: list[ev.Event] = []

    async def emit(self, *events: ev.Event) -> None:
        self.emitted.extend(events)


def on_the_wire(event: ev.Event) -> ev.Event:
    """The event as a consumer reads it: encoded, then decoded and validated."""
    _, value, _ = wire.encode(event)
    return wire.decode(value)


async def test_the_noop_stages_take_a_request_to_a_completed_job_with_derived_ids_and_its_notify_targets():
    request = ev.JobRequested(
        job_id="0190d6a8-0000-7000-8000-000000000001",
        tenant="t1",
        producer="gateway",
        data=ev.JobRequestedData(url=URL, notify=NOTIFY),
    )
    crawl, generate = Delivery(), Delivery()
    await noop_stages.NoopCrawl().on_job_requested(on_the_wire(request), crawl)  # type: ignore[arg-type]
    [crawled] = crawl.emitted
    crawled = on_the_wire(crawled)
    assert isinstance(crawled, ev.CrawlSucceeded)
    assert crawled.event_id == derived_uuid7(request.event_id, "crawl.succeeded")
    assert (crawled.job_id, crawled.tenant, crawled.attempt, crawled.producer) == (request.job_id, "t1", 1, "crawler")
    assert crawled.data.crawl.start_url == URL and [p.url for p in crawled.data.crawl.pages] == [URL]
    assert crawled.data.notify == NOTIFY

    await noop_stages.NoopGenerate().on_crawl_succeeded(crawled, generate)  # type: ignore[arg-type]
    [done] = generate.emitted
    done = on_the_wire(done)
    assert isinstance(done, ev.JobCompleted)
    assert done.event_id == derived_uuid7(crawled.event_id, "job.completed")
    assert (done.job_id, done.tenant, done.attempt, done.producer) == (request.job_id, "t1", 1, "generator")
    assert done.data.url == URL and done.data.notify == NOTIFY and done.data.pages_crawled == 1
    assert done.data.result.schema_["@context"] == "https://schema.org"

    # The read model folds them to a completed job, as it folds the real stages' events.
    policy = RetryPolicy(max_attempts=3, backoff_s=(1, 5, 15))
    doc = None
    for offset, event in enumerate((request, crawled, done)):
        doc = project(doc, event, (0, offset), policy) or doc
    assert doc is not None and doc["status"] == "completed" and doc["finished_at"] is not None


async def test_the_noop_stages_answer_their_retries_and_ignore_cancels():
    crawl = ev.JobRetryRequested(
        job_id="0190d6a8-0000-7000-8000-000000000002",
        attempt=2,
        data=ev.JobRetryRequestedData(stage="crawl", reason="test", url=URL, notify=[]),
    )
    delivery = Delivery()
    await noop_stages.NoopCrawl().on_retry_requested(crawl, delivery)  # type: ignore[arg-type]
    [out] = delivery.emitted
    assert out.attempt == 2 and out.event_id == derived_uuid7(crawl.event_id, "crawl.succeeded")
    cancel = ev.JobCancelRequested(job_id=crawl.job_id)
    await noop_stages.NoopCrawl().on_cancel_requested(cancel, delivery)  # type: ignore[arg-type]
    await noop_stages.NoopGenerate().on_cancel_requested(cancel, delivery)  # type: ignore[arg-type]
    assert len(delivery.emitted) == 1


def consumer_wiring(worker) -> list[tuple]:
    out = []
    for c in worker.consumers:
        if isinstance(c, KeyedConsumer):
            out.append(
                (
                    c.topic,
                    c.group,
                    c.name,
                    sorted(c.handlers),
                    c.max_in_flight,
                    c.handler_attempts,
                    c.retry_backoff_s,
                    c.fetch_max_wait_ms,
                    c.unordered,
                    c.publisher._options,
                )
            )
        else:
            out.append((type(c).__name__, c.topic, c.stage, c.client_id, len(c.consumers)))
    return out


@pytest.mark.parametrize(
    ("settings_cls", "product", "noop"),
    [
        (CrawlerSettings, crawler_create_app, noop_stages.crawler_app),
        (GeneratorSettings, generator_create_app, noop_stages.generator_app),
    ],
)
def test_the_noop_workers_are_wired_as_the_products(settings_cls, product, noop):
    settings = load_settings(settings_cls, kafka_bootstrap="k:1", mongo_url="mongodb://m", env="local")
    real, bench = product(settings), noop(settings)
    assert bench.name == real.name
    assert consumer_wiring(bench) == consumer_wiring(real)


def test_jobs_per_s_runs_from_the_first_request_to_the_last_completion():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(s: float, naive: bool = False) -> datetime:
        t = t0 + timedelta(seconds=s)
        return t.replace(tzinfo=None) if naive else t  # pymongo's naive datetimes are UTC

    docs = [
        {"_id": "a", "status": "completed", "created_at": at(0), "finished_at": at(3)},
        {"_id": "b", "status": "completed", "created_at": at(1), "finished_at": at(4)},
        {"_id": "c", "status": "completed", "created_at": at(2, naive=True), "finished_at": at(2.5, naive=True)},
        {"_id": "d", "status": "generating", "created_at": at(-9), "finished_at": None},
    ]
    got = throughput_from_documents(docs)
    assert got["completed"] == 3 and got["window_s"] == 4.0 and got["jobs_per_s"] == 0.8
    assert throughput_from_documents([docs[3]]) == {"completed": 0, "jobs_per_s": 0.0, "window_s": None}
    # When the read model showed them completed (the oplog's wallTime), after their events' own time.
    shown = {"b": at(5, naive=True), "c": at(2.6, naive=True)}
    got = throughput_from_documents(docs, shown)
    assert got["window_s"] == 5.0 and got["jobs_per_s"] == 0.6


def test_a_completion_is_an_update_or_a_replace_that_writes_status_completed():
    update = {"operationType": "update", "updateDescription": {"updatedFields": {"status": "completed", "x": 1}}}
    assert turned_completed(update)
    assert not turned_completed({"operationType": "update", "updateDescription": {"updatedFields": {"x": 1}}})
    assert turned_completed({"operationType": "replace", "fullDocument": {"status": "completed"}})
    assert not turned_completed({"operationType": "replace", "fullDocument": {"status": "generating"}})
    assert not turned_completed({"operationType": "insert", "fullDocument": {"status": "completed"}})
    assert per_job_ms({"gateway": 1.0, "broker": 0.5}, 500) == {"gateway": 2.0, "broker": 1.0, "total": 3.0}


def peer(system: str, config: str, jobs_per_s: float, status: str = "ok", scenario: str = "throughput") -> dict:
    return {"system": system, "config": config, "scenario": scenario, "jobs_per_s": jobs_per_s, "status": status}


def test_tier_a_ratios_divide_within_each_rep_by_the_best_config_and_leave_out_incomplete_runs():
    reps = [
        [peer("bullmq", "c16", 1000), peer("bullmq", "c1", 300), peer("celery", "prefork-c2", 100)],
        [peer("bullmq", "c16", 500), peer("bullmq", "c1", 400), peer("celery", "prefork-c2", 0, "INCOMPLETE")],
        [peer("bullmq", "c16", 800), peer("bullmq", "c1", 200), peer("celery", "prefork-c2", 200)],
    ]
    ours = [
        {"jobs_per_s": 250.0, "complete": True},
        {"jobs_per_s": 200.0, "complete": True},
        {"jobs_per_s": 999.0, "complete": False},
    ]
    got = tier_a_ratios(ours, reps)
    bullmq = got["ratio_noop_jobs_per_s_vs_bullmq"]
    assert bullmq["config"] == "c16" and bullmq["per_rep"] == [0.25, 0.4, None]
    assert (bullmq["median"], bullmq["min"], bullmq["max"], bullmq["n"]) == (0.325, 0.25, 0.4, 2)
    celery = got["ratio_noop_jobs_per_s_vs_celery"]
    assert celery["per_rep"] == [2.5, None, None] and celery["median"] == 2.5
    dramatiq = got["ratio_noop_jobs_per_s_vs_dramatiq"]
    assert dramatiq["config"] is None and dramatiq["median"] is None and dramatiq["per_rep"] == [None, None, None]
    assert "0.33 (0.25–0.40)" in got["tier_a_peers_table"]
