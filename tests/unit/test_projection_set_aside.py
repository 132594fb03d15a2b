"""What the projector does with an event it kept failing on: the DLQ, and its job failed readably."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiokafka.structs import ConsumerRecord

from sitewright_contracts import encode
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext
from sitewright_gateway.readmodel.rules import RetryPolicy
from sitewright_gateway.readmodel.writer import Projection


class RecordingPublisher:
    """Records what the projection sends (the broker is not what this test is about)."""

    def __init__(self) -> None:
        self.dead: list[dict[str, Any]] = []
        self.published: list[ev.Event] = []

    async def dead_letter(self, record: ConsumerRecord, **fields: Any) -> None:
        self.dead.append({"offset": record.offset, **fields})

    async def publish(self, events: list[ev.Event], **_: Any) -> None:
        self.published.extend(events)


def record_of(event: ev.Event, offset: int = 7) -> ConsumerRecord:
    key, value, headers = encode(event)
    return ConsumerRecord("jobs.events", 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


def projection(publisher: RecordingPublisher) -> Projection:
    return Projection(None, publisher, RetryPolicy(), "sitewright-projector", timedelta(days=1))  # type: ignore[arg-type]


async def test_a_stage_event_set_aside_fails_its_job_with_a_readable_error_once():
    publisher = RecordingPublisher()
    crawl = CrawlContext(start_url="https://a.example/", pages=[])
    event = ev.CrawlSucceeded(job_id="j1", tenant="acme", attempt=2, data=ev.CrawlSucceededData(crawl=crawl))
    for _ in range(2):  # set aside again after a restart: the same failure, which consumers drop
        await projection(publisher).set_aside(record_of(event), ValueError("key too large"))

    assert [d["reason"] for d in publisher.dead] == ["unprocessable", "unprocessable"]
    assert publisher.dead[0]["error"] == "ValueError: key too large" and publisher.dead[0]["offset"] == 7
    failed = publisher.published[0]
    assert isinstance(failed, ev.JobFailed) and failed.job_id == "j1" and failed.tenant == "acme"
    assert failed.attempt == 2 and failed.data.stage == "crawl" and not failed.data.error.retryable
    assert failed.data.error.code == "unprocessable_event" and "crawl.succeeded" in failed.data.error.message
    assert publisher.published[1].event_id == failed.event_id


async def test_an_event_after_the_outcome_is_set_aside_without_failing_the_job():
    publisher = RecordingPublisher()
    done = ev.JobCancelled(job_id="j2", tenant="acme")
    await projection(publisher).set_aside(record_of(done), ValueError("bad"))
    assert len(publisher.dead) == 1 and publisher.published == []
