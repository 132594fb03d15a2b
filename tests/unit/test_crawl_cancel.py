"""What the crawler emits when a crawl is cancelled, as the projector's state machine reads it."""

from __future__ import annotations

from sitewright_contracts import uuid7
from sitewright_contracts import events as ev
from sitewright_crawler.handlers import cancelled_event_id
from sitewright_gateway.projector import RetryPolicy, project


def fold(events: list[ev.Event]) -> dict:
    doc = None
    for offset, event in enumerate(events):
        doc = project(doc, event, (0, offset), RetryPolicy()) or doc
    assert doc is not None
    return doc


def test_a_cancelled_crawl_ends_the_job_and_late_crawl_events_change_nothing() -> None:
    job_id = uuid7()
    request = ev.JobRequested(job_id=job_id, data=ev.JobRequestedData(url="https://a.test/"))
    cancel = ev.JobCancelRequested(job_id=job_id)
    cancelled = ev.JobCancelled(job_id=job_id, event_id=cancelled_event_id(cancel), producer="crawler")
    doc = fold([
        request,
        ev.CrawlStarted(job_id=job_id, data=ev.CrawlStartedData(url="https://a.test/")),
        ev.CrawlProgress(job_id=job_id, data=ev.CrawlProgressData(pages_done=2, pages_estimated=10, progress=14)),
        cancel,
        cancelled,
        # Emitted by a progress call already under way when the cancel arrived: ignored.
        ev.CrawlProgress(job_id=job_id, data=ev.CrawlProgressData(pages_done=3, pages_estimated=10, progress=16)),
    ])
    assert (doc["status"], doc["progress"]) == ("cancelled", 14)
    assert doc["finished_at"] is not None


def test_the_cancelled_event_id_depends_only_on_the_request() -> None:
    cancel = ev.JobCancelRequested(job_id=uuid7())
    assert cancelled_event_id(cancel) == cancelled_event_id(cancel.model_copy())  # redelivery: same id
    assert cancelled_event_id(cancel) != cancelled_event_id(ev.JobCancelRequested(job_id=cancel.job_id))
