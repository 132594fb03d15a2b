"""The projector is a pure function: state machine, idempotency, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sitewright_contracts import derived_uuid7, uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, ErrorInfo, PageSummary, SeoResult
from sitewright_gateway.readmodel.rules import RetryPolicy, changed_fields, new_job, project

POLICY = RetryPolicy(max_attempts=3, backoff_s=(1, 5, 15))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CRAWL = CrawlContext(start_url="https://a.example/", pages=[PageSummary(url="https://a.example/", title="A")])
RESULT = SeoResult.model_validate(
    {
        "meta": {"title": "A", "description": "About A"},
        "content": [{"heading": "A", "body": "All about A."}],
        "faq": [{"question": "What?", "answer": "A."}],
        "schema": {"@context": "https://schema.org", "@type": "WebSite"},
    }
)


def story(job_id: str) -> list[ev.Event]:
    t = iter(T0 + timedelta(seconds=i) for i in range(100))
    c = dict(job_id=job_id)
    return [
        ev.JobRequested(occurred_at=next(t), data=ev.JobRequestedData(url="https://a.example/"), **c),
        ev.CrawlStarted(occurred_at=next(t), data=ev.CrawlStartedData(url="https://a.example/"), **c),
        ev.CrawlProgress(
            occurred_at=next(t), data=ev.CrawlProgressData(pages_done=1, pages_estimated=2, progress=20), **c
        ),
        ev.CrawlSucceeded(occurred_at=next(t), data=ev.CrawlSucceededData(crawl=CRAWL), **c),
        ev.GenerationStarted(occurred_at=next(t), data=ev.GenerationStartedData(provider="offline", model="m"), **c),
        ev.GenerationProgress(occurred_at=next(t), data=ev.GenerationProgressData(progress=60), **c),
        ev.ParsingStarted(occurred_at=next(t), **c),
        ev.JobCompleted(occurred_at=next(t), data=ev.JobCompletedData(result=RESULT), **c),
    ]


def fold(events, doc=None):
    trail = []
    for offset, event in enumerate(events):
        doc = project(doc, event, (0, offset), POLICY) or doc
        trail.append((doc["status"], doc["progress"]))
    return doc, trail


def test_a_job_moves_through_every_stage_to_100_percent():
    doc, trail = fold(story(uuid7()))
    assert trail == [
        ("pending", 0),
        ("crawling", 10),
        ("crawling", 20),
        ("generating", 40),
        ("generating", 40),
        ("generating", 60),
        ("parsing", 90),
        ("completed", 100),
    ]
    assert doc["result_summary"]["schema_type"] == "WebSite"
    assert doc["timings"]["crawl_s"] == 2.0 and doc["finished_at"] == T0 + timedelta(seconds=7)


def test_reapplying_any_event_changes_nothing():
    events = story(uuid7())
    doc, _ = fold(events)
    for offset, event in enumerate(events):
        assert project(doc, event, (0, offset), POLICY) is None


def test_a_redelivered_older_event_cannot_move_a_job_backwards():
    events = story(uuid7())
    doc, _ = fold(events[:6])  # generating at 60 %
    stale = ev.CrawlProgress(job_id=doc["_id"], data=ev.CrawlProgressData(pages_done=1, pages_estimated=1, progress=30))
    assert project(doc, stale, (0, 99), POLICY)["status"] == "generating"
    done, _ = fold(events)
    late = ev.GenerationProgress(job_id=doc["_id"], data=ev.GenerationProgressData(progress=70))
    assert project(done, late, (0, 100), POLICY)["status"] == "completed"


def test_a_retryable_failure_schedules_a_retry_and_a_spent_one_fails():
    events = story(uuid7())
    doc, _ = fold(events[:2])
    error = ErrorInfo(code="timeout", message="slow", retryable=True)
    failed = ev.CrawlFailed(
        job_id=doc["_id"], occurred_at=T0 + timedelta(seconds=10), data=ev.StageFailedData(error=error)
    )
    doc = project(doc, failed, (0, 5), POLICY)
    assert doc["action"]["kind"] == "retry" and doc["action"]["attempt"] == 2
    assert doc["next_attempt_at"] == T0 + timedelta(seconds=11) and doc["status"] == "crawling"
    retry = ev.JobRetryRequested(job_id=doc["_id"], attempt=2, data=ev.JobRetryRequestedData(stage="crawl"))
    doc = project(doc, retry, (0, 6), POLICY)
    assert doc["action"] is None and doc["attempt"] == 2 and doc["attempts"]["crawl"] == 2
    third = ev.CrawlFailed(job_id=doc["_id"], attempt=3, data=ev.StageFailedData(error=error))
    doc = project(doc, third, (0, 7), POLICY)
    assert doc["action"]["kind"] == "fail"
    final = ev.JobFailed(job_id=doc["_id"], attempt=3, data=ev.JobFailedData(stage="crawl", error=error))
    doc = project(doc, final, (0, 8), POLICY)
    assert doc["status"] == "failed" and doc["error"]["code"] == "timeout"


def test_a_non_retryable_failure_fails_at_once():
    doc, _ = fold(story(uuid7())[:2])
    error = ErrorInfo(code="robots_disallowed", message="no", retryable=False)
    doc = project(doc, ev.CrawlFailed(job_id=doc["_id"], data=ev.StageFailedData(error=error)), (0, 3), POLICY)
    assert doc["action"]["kind"] == "fail" and doc["next_attempt_at"] is None


def test_events_without_their_request_create_nothing_and_changed_fields_is_minimal():
    job_id = uuid7()
    assert project(None, story(job_id)[1], (0, 0), POLICY) is None
    first = new_job(story(job_id)[0])
    second = project(first, story(job_id)[1], (0, 1), POLICY)
    changed = changed_fields(first, second)
    assert "_id" not in changed and "url" not in changed and changed["status"] == "crawling"
    assert derived_uuid7(job_id, "a") == derived_uuid7(job_id, "a")


def test_retry_after_from_a_provider_is_a_floor_under_the_backoff():
    doc, _ = fold(story(uuid7())[:5])  # generating, attempt 1
    at = T0 + timedelta(seconds=20)

    def fail(retry_after_s):
        error = ErrorInfo(code="rate_limited", message="429", retryable=True, retry_after_s=retry_after_s)
        return ev.GenerationFailed(job_id=doc["_id"], occurred_at=at, data=ev.StageFailedData(error=error))

    assert project(doc, fail(30), (0, 9), POLICY)["next_attempt_at"] == at + timedelta(seconds=30)
    # A Retry-After shorter than the backoff does not bring the retry forward.
    assert project(doc, fail(0.5), (0, 9), POLICY)["next_attempt_at"] == at + timedelta(seconds=1)
    assert project(doc, fail(None), (0, 9), POLICY)["action"]["due_at"] == at + timedelta(seconds=1)


def test_tokens_of_every_attempt_add_up_on_the_job():
    events = story(uuid7())
    doc, _ = fold(events[:5])
    error = ErrorInfo(code="stream_truncated", message="cut", retryable=True)
    failed = ev.GenerationFailed(
        job_id=doc["_id"], data=ev.StageFailedData(error=error, tokens_in=1000, tokens_out=200)
    )
    doc = project(doc, failed, (0, 9), POLICY)
    assert doc["tokens"] == {"in": 1000, "out": 200}
    assert project(doc, failed, (0, 9), POLICY) is None  # a redelivery is not counted twice
    retry = ev.JobRetryRequested(
        job_id=doc["_id"], attempt=2, data=ev.JobRetryRequestedData(stage="generate", crawl=CRAWL)
    )
    doc = project(doc, retry, (0, 10), POLICY)
    done = ev.JobCompleted(
        job_id=doc["_id"], attempt=2, data=ev.JobCompletedData(result=RESULT, tokens_in=1100, tokens_out=900)
    )
    doc = project(doc, done, (0, 11), POLICY)
    assert doc["status"] == "completed" and doc["tokens"] == {"in": 2100, "out": 1100}


def test_folding_in_memory_and_through_the_database_gives_the_same_document():
    """BSON keeps milliseconds: the projector's cached document (never stored) and one read back
    must fold the next events alike, or a replay would differ from the live read model."""

    def stored(doc):  # what a round trip through the database returns
        return {
            k: v.replace(microsecond=v.microsecond // 1000 * 1000)
            if isinstance(v, datetime)
            else {
                kk: vv.replace(microsecond=vv.microsecond // 1000 * 1000) if isinstance(vv, datetime) else vv
                for kk, vv in v.items()
            }
            if isinstance(v, dict)
            else v
            for k, v in doc.items()
        }

    events = [
        e.model_copy(update={"occurred_at": e.occurred_at + timedelta(microseconds=123_456 * i)})
        for i, e in enumerate(story(uuid7()))
    ]
    in_memory, _ = fold(events)
    doc = None
    for offset, event in enumerate(events):
        doc = stored(project(doc, event, (0, offset), POLICY) or doc)
    assert stored(in_memory) == doc
    assert in_memory["timings"] == doc["timings"]


def test_a_finished_job_with_targets_is_due_for_a_notification_check_until_one_is_on_record():
    from sitewright_contracts.models import NotifyTarget
    from sitewright_gateway.readmodel.rules import due_at, notification_missing

    job_id = uuid7()
    events = story(job_id)
    hook = NotifyTarget(channel="webhook", target="https://hooks.example/x")
    events[0] = ev.JobRequested(
        occurred_at=T0, data=ev.JobRequestedData(url="https://a.example/", notify=[hook]), job_id=job_id
    )
    doc, _ = fold(events)
    retention, grace = timedelta(days=7), timedelta(minutes=10)
    assert notification_missing(doc) and due_at(doc, retention, grace) == doc["finished_at"] + grace
    assert due_at(doc, retention) == doc["finished_at"] + retention, "no grace: no check (the default)"

    sent = ev.NotificationSent(
        job_id=job_id,
        data=ev.NotificationData(
            channel="webhook", target=hook.target, outcome="completed", outcome_event_id=events[-1].event_id
        ),
    )
    notified = project(doc, sent, (0, 99), POLICY)
    assert notified is not None and not notification_missing(notified)
    assert due_at(notified, retention, grace) == doc["finished_at"] + retention
    # A notification of an earlier outcome (the attempt that failed) does not count for this one.
    assert notification_missing(doc | {"notifications": [{"outcome": "failed", "ok": True}]})
    assert not notification_missing(doc | {"notify_reconciled_at": T0}), "checked once"
    assert not notification_missing(fold(story(uuid7()))[0]), "nobody to tell"
