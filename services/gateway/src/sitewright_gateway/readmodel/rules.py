"""The read model as a pure function of the log: (job document, event) -> job document.

No I/O here. `writer.py` feeds events in log order and writes what
changes. Every rule is idempotent: an event already applied (its id is in
`seen`) changes nothing, and events from an older attempt or an earlier
stage than the job is in cannot move it backwards, so redeliveries and
replays are harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sitewright_contracts import events as ev
from sitewright_contracts.models import TERMINAL_STATUSES

from .documents import JobDocument

SEEN_WINDOW = 64
LOG_LINES = 20
MAX_NOTIFICATIONS = 20

Doc = dict[str, Any]  # a job document while a rule edits it; `JobDocument` where it is whole

_STAGE_STATUS = {"crawl": "crawling", "generate": "generating"}
_STATUS_RANK = {"pending": 0, "crawling": 1, "generating": 2, "parsing": 3}


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a stage gets, and how long to wait before each retry."""

    max_attempts: int = 3
    backoff_s: tuple[float, ...] = (60, 300, 900)

    def delay(self, attempt: int) -> timedelta:
        """Wait before the attempt after `attempt` (1-based)."""
        return timedelta(seconds=self.backoff_s[min(attempt, len(self.backoff_s)) - 1])


def stored_time(event: ev.Event) -> datetime:
    """The event's time as the database keeps it (BSON dates hold milliseconds).

    Every time the fold uses goes through here, so a document folded in memory (the projector's
    cache) and one read back from the database give the same timings to the millisecond: a
    replay into a fresh read model must give the live one, byte for byte.
    """
    at = event.occurred_at
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def new_job(event: ev.JobRequested) -> JobDocument:
    """The job document for a request: what the gateway writes before publishing it."""
    d = event.data
    return {
        "_id": event.job_id,
        "tenant": event.tenant,
        "url": d.url,
        "options": d.options.model_dump(),
        "notify": [t.model_dump() for t in d.notify],
        "priority": d.priority,
        "status": "pending",
        "stage": "crawl",
        "progress": 0,
        "attempt": 1,
        "attempts": {"crawl": 0, "generate": 0},
        "created_at": stored_time(event),
        "updated_at": stored_time(event),
        "started_at": None,
        "finished_at": None,
        "next_attempt_at": None,
        "action": None,
        "error": None,
        "result_summary": None,
        "result_at": None,
        "stage_started_at": {},
        "timings": {},
        "notifications": [],
        "log": [_log_line(event, "job requested")],
        "seen": [event.event_id],
        "version": 1,
        "position": None,
    }


def due_at(doc: Doc, retention: timedelta, notify_grace: timedelta | None = None) -> datetime | None:
    """When the scheduler next acts on the job: its pending retry or failure when due, or, once it
    finished, a check of its notifications `notify_grace` later (while none is recorded), then its
    deletion one retention period later (a revived job has none). An unpublished request keeps the
    time the gateway gave it (its publish is then overdue)."""
    if doc.get("published") is False:
        return doc.get("due_at")
    if doc.get("action"):
        return doc["action"]["due_at"]
    if doc.get("finished_at") is not None:
        if notify_grace is not None and notification_missing(doc):
            return doc["finished_at"] + notify_grace
        return doc["finished_at"] + retention
    return None


def notification_missing(doc: Doc) -> bool:
    """A finished job with someone to tell, no notification (sent or tried) for its outcome on record, and
    not yet reconciled: its outcome may never have reached the notifier."""
    if doc.get("finished_at") is None or not doc.get("notify") or doc.get("notify_reconciled_at"):
        return False
    return not any(n.get("outcome") == doc["status"] for n in doc.get("notifications") or [])


def request_of(doc: JobDocument | Doc) -> ev.JobRequested:
    """The request a job document was made from (the inverse of `new_job`), with its own event id."""
    return ev.JobRequested(
        event_id=doc["seen"][0],
        job_id=doc["_id"],
        tenant=doc["tenant"],
        producer="gateway",
        occurred_at=doc["created_at"],
        data=ev.JobRequestedData(
            url=doc["url"], options=doc["options"], notify=doc["notify"], priority=doc["priority"]
        ),
    )


def outcome_of(doc: JobDocument | Doc) -> dict[str, Any]:
    """What an outcome event carries for the notifier (`events.OutcomeData`): the site and whom to tell."""
    return {"url": doc["url"], "notify": doc.get("notify") or []}


def project(doc: Doc | None, event: ev.Event, position: tuple[int, int], policy: RetryPolicy) -> Doc | None:
    """Apply `event` (read at `position` = (partition, offset)) to `doc`; None when nothing changes."""
    at = {"partition": position[0], "offset": position[1]}
    if doc is None:
        # A job's first event on the log is its request; anything else has lost its job.
        return new_job(event) | {"position": at} if isinstance(event, ev.JobRequested) else None
    if event.event_id in doc["seen"]:
        if isinstance(event, ev.JobRequested) and doc["position"] is None:
            # The gateway wrote the document before publishing; now it has its place in the log,
            # exactly as a rebuild from the log would give it.
            return doc | {"position": at}
        return None
    new = dict(doc)
    note = _apply(new, event, policy)
    if isinstance(event, ev.JobCompleted) and new["status"] == "completed" and doc["status"] != "completed":
        # Which copy of the completion is the job's result: a stage that ran twice completes twice
        # (a stale attempt under another id, a redelivery under the same id later in the log).
        new["result_at"] = at
    if note is None:
        # Not a change of state, but remember the id so a replay is recognised cheaply.
        new["seen"] = (doc["seen"] + [event.event_id])[-SEEN_WINDOW:]
        new["position"] = {"partition": position[0], "offset": position[1]}
        return new
    return _stamp(new, event, position, note)


def _stamp(doc: Doc, event: ev.Event, position: tuple[int, int], note: str) -> Doc:
    if event.event_id not in doc["seen"]:
        doc["seen"] = (doc["seen"] + [event.event_id])[-SEEN_WINDOW:]
    if note:
        doc["log"] = (doc["log"] + [_log_line(event, note)])[-LOG_LINES:]
    doc["updated_at"] = max(doc["updated_at"], stored_time(event))
    doc["version"] = doc["version"] + 1
    doc["position"] = {"partition": position[0], "offset": position[1]}
    return doc


def _log_line(event: ev.Event, note: str) -> str:
    return f"{event.occurred_at.isoformat(timespec='seconds')} {event.type} (attempt {event.attempt}): {note}"


def _current(doc: Doc, stage: str | None, attempt: int) -> bool:
    """Whether an event of `stage`/`attempt` belongs to what the job is doing now."""
    if doc["status"] in TERMINAL_STATUSES:
        return False
    if stage != doc["stage"]:
        # A stage event may move the job forward (crawl -> generate), never back.
        return stage == "generate" and doc["stage"] == "crawl" and doc["status"] in ("pending", "crawling")
    return attempt >= doc["attempt"]


def _enter(doc: Doc, stage: str, attempt: int, at: datetime) -> None:
    doc["stage"] = stage
    doc["attempt"] = attempt
    doc["attempts"] = {**doc["attempts"], stage: max(doc["attempts"].get(stage, 0), attempt)}
    doc["stage_started_at"] = {**doc["stage_started_at"], stage: at}
    doc["started_at"] = doc["started_at"] or at
    doc["next_attempt_at"] = None
    doc["action"] = None


def _finish_stage(doc: Doc, stage: str, at: datetime) -> None:
    started = doc["stage_started_at"].get(stage)
    if started is not None:
        doc["timings"] = {**doc["timings"], f"{stage}_s": round((at - started).total_seconds(), 3)}


def _apply(doc: Doc, event: ev.Event, policy: RetryPolicy) -> str | None:
    """Mutate `doc` (a shallow copy) for `event`; return a log note, or None if state is unchanged."""
    at = stored_time(event)
    match event:
        case ev.JobRequested():
            return None  # the document was created from it
        case ev.CrawlStarted() if _current(doc, "crawl", event.attempt):
            _enter(doc, "crawl", event.attempt, at)
            doc.update(
                status="crawling", progress=max(10, doc["progress"] if doc["status"] == "crawling" else 10), error=None
            )
            return f"crawling {event.data.url}"
        case ev.CrawlProgress() if _current(doc, "crawl", event.attempt) and doc["status"] == "crawling":
            if event.data.progress <= doc["progress"]:
                return None
            doc["progress"] = event.data.progress
            return f"{event.data.pages_done} of about {event.data.pages_estimated} pages"
        case ev.CrawlSucceeded() if _current(doc, "crawl", event.attempt):
            _finish_stage(doc, "crawl", at)
            doc["pages_crawled"] = len(event.data.crawl.pages)
            _enter(doc, "generate", 1, at)
            doc.update(status="generating", progress=40, error=None)
            return f"crawled {len(event.data.crawl.pages)} pages"
        case ev.GenerationStarted() if _current(doc, "generate", event.attempt):
            _enter(doc, "generate", event.attempt, at)
            doc.update(
                status="generating", progress=max(40, doc["progress"] if doc["stage"] == "generate" else 40), error=None
            )
            return f"generating with {event.data.provider}/{event.data.model}"
        case ev.GenerationProgress() if _current(doc, "generate", event.attempt) and doc["status"] == "generating":
            if event.data.progress <= doc["progress"]:
                return None
            doc["progress"] = event.data.progress
            return event.data.detail or f"{event.data.progress}%"
        case ev.ParsingStarted() if _current(doc, "generate", event.attempt) and _STATUS_RANK[doc["status"]] <= 3:
            doc.update(status="parsing", progress=90)
            return "parsing and validating the output"
        case ev.CrawlFailed() | ev.GenerationFailed() if _current(doc, event.stage, event.attempt):
            return _stage_failed(doc, event, policy)
        case ev.JobRetryRequested() if doc["status"] == "failed" or _current(doc, event.data.stage, event.attempt):
            stage = event.data.stage
            _enter(doc, stage, event.attempt, at)
            doc.update(status=_STAGE_STATUS[stage], progress=10 if stage == "crawl" else 40, finished_at=None)
            return f"retrying {stage} as attempt {event.attempt}: {event.data.reason}"
        case ev.JobCompleted() if doc["status"] not in TERMINAL_STATUSES:
            _finish_stage(doc, "generate", at)
            _add_tokens(doc, event.data.tokens_in, event.data.tokens_out)
            result = event.data.result
            doc.update(
                status="completed",
                progress=100,
                finished_at=at,
                error=None,
                action=None,
                next_attempt_at=None,
                result_summary={
                    "title": result.meta.title,
                    "sections": len(result.content),
                    "faq": len(result.faq),
                    "schema_type": result.schema_.get("@type"),
                },
            )
            return "completed"
        case ev.JobFailed() if doc["status"] not in TERMINAL_STATUSES:
            doc.update(
                status="failed",
                finished_at=at,
                action=None,
                next_attempt_at=None,
                error=event.data.error.model_dump() | {"stage": event.data.stage},
            )
            return f"failed: {event.data.error.code}"
        case ev.JobCancelled() if doc["status"] not in TERMINAL_STATUSES:
            doc.update(status="cancelled", finished_at=at, action=None, next_attempt_at=None)
            return f"cancelled: {event.data.reason}"
        case ev.JobCancelRequested() if doc["status"] not in TERMINAL_STATUSES:
            doc["cancel_requested_at"] = at
            return "cancel requested"
        case ev.NotificationSent() | ev.NotificationFailed():
            d = event.data
            entry = {
                "channel": d.channel,
                "target": d.target,
                "outcome": d.outcome,
                "ok": isinstance(event, ev.NotificationSent),
                "status_code": d.status_code,
                "error": d.error,
                "at": at,
            }
            doc["notifications"] = (doc["notifications"] + [entry])[-MAX_NOTIFICATIONS:]
            return f"notification {'sent' if entry['ok'] else 'failed'} via {d.channel}"
    return None


def _stage_failed(doc: Doc, event: ev.CrawlFailed | ev.GenerationFailed, policy: RetryPolicy) -> str:
    """Record the error and what the scheduler should do next: retry later, or fail the job."""
    error = event.data.error
    stage = event.stage
    assert stage is not None
    doc["error"] = error.model_dump() | {"stage": stage}
    _finish_stage(doc, stage, stored_time(event))
    _add_tokens(doc, event.data.tokens_in, event.data.tokens_out)
    if error.retryable and event.attempt < policy.max_attempts:
        # A provider's Retry-After is a floor: retrying sooner only earns another 429.
        delay = max(policy.delay(event.attempt), timedelta(seconds=error.retry_after_s or 0))
        due = stored_time(event) + delay
        doc["next_attempt_at"] = due
        doc["action"] = {
            "kind": "retry",
            "stage": stage,
            "attempt": event.attempt + 1,
            "due_at": due,
            "cause": event.event_id,
        }
        return (
            f"{error.code}: {error.message} "
            f"(retry {event.attempt + 1} of {policy.max_attempts} at {due.isoformat(timespec='seconds')})"
        )
    doc["next_attempt_at"] = None
    doc["action"] = {
        "kind": "fail",
        "stage": stage,
        "attempt": event.attempt,
        "due_at": stored_time(event),
        "cause": event.event_id,
    }
    why = "not retryable" if not error.retryable else f"{policy.max_attempts} attempts spent"
    return f"{error.code}: {error.message} ({why})"


def _add_tokens(doc: Doc, tokens_in: int, tokens_out: int) -> None:
    """Sum the LLM tokens of every attempt: the job's cost, and what its token cap counts."""
    if tokens_in or tokens_out:
        tokens = doc.get("tokens") or {"in": 0, "out": 0}
        doc["tokens"] = {"in": tokens["in"] + tokens_in, "out": tokens["out"] + tokens_out}


def changed_fields(old: Doc, new: Doc) -> Doc:
    """The top-level fields of `new` that differ from `old`: what a `$set` must write."""
    return {k: v for k, v in new.items() if k != "_id" and old.get(k) != v}


def event_from_document(doc: Doc) -> ev.Event:
    """The event one audit-trail document records (`audit.events_of` gives them; the inverse of `audit.entry`)."""
    fields = {k: doc[k] for k in ("job_id", "tenant", "type", "attempt", "occurred_at", "producer", "data")}
    return ev.EVENT_ADAPTER.validate_python(fields | {"event_id": doc["_id"]})


def state_as_of(events: list[Doc], at: datetime, policy: RetryPolicy) -> Doc | None:
    """Time travel: the job document as it was at `at`, folded from its audit trail in log order."""
    doc = None
    for d in sorted(events, key=lambda d: (d["occurred_at"], d["_id"])):
        if d["occurred_at"] > at:
            break
        doc = project(doc, event_from_document(d), (d["partition"], d["offset"]), policy) or doc
    return doc
