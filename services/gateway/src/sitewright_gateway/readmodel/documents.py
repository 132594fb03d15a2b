"""The read model's documents, typed: a job (`jobs`), its result (`results`), and the parts they share.

These are the shapes the rules (`rules.py`) fold, the writer (`writer.py`) stores, the rebuild compares
and the API (`web/schemas.py`) answers from. They are TypedDicts, not models: the projector folds
thousands of them a second, and a dict costs nothing to copy into and out of the database driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

from sitewright_contracts.models import JobStatus, Stage


class Position(TypedDict):
    """Where an event sits in `jobs.events`."""

    partition: int
    offset: int


class JobErrorDoc(TypedDict, total=False):
    code: str
    message: str
    retryable: bool
    retry_after_s: float | None
    stage: Stage


class Action(TypedDict):
    """What the scheduler does next for a job: retry a stage, or fail it, once `due_at` has come."""

    kind: Literal["retry", "fail"]
    stage: Stage
    attempt: int
    due_at: datetime
    cause: str
    emitted_at: NotRequired[datetime]  # the scheduler's: when it last published the action


class JobDocument(TypedDict):
    """One job in `jobs`: the fold of its events (`rules.project`), plus the gateway's and scheduler's bookkeeping.

    Who writes it, and why there are three writers rather than one:
    - The projector (`writer.py`) owns every field the fold produces, and is the only writer of them once a job exists.
    - The intake (`intake.py`) inserts the first document, before answering a POST, so that a GET right after
      the POST finds the job on any gateway. What it inserts is exactly what the projector would make of the
      request (`rules.new_job`, at the request's log position), so the projector recognises it and writes
      nothing; seeding the projector in-process instead would not help a GET served by another gateway.
    - The scheduler (`scheduler/loop.py`) writes only its bookkeeping: `published`, `outbox` and `due_at` of
      the outbox, `action.emitted_at`, `redriven_at` of a stuck job, `notify_reconciled_at` and `due_at` of a
      finished job whose outcome it sent again, and it deletes a job one retention period after it finished.
    The rebuild (`rebuild.BOOKKEEPING`) compares read models without those bookkeeping fields.
    """

    _id: str
    tenant: str
    url: str
    options: dict[str, Any]
    notify: list[dict[str, str]]
    priority: int
    status: JobStatus
    stage: Stage
    progress: int
    attempt: int
    attempts: dict[str, int]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    action: Action | None
    error: JobErrorDoc | None
    result_summary: dict[str, Any] | None
    result_at: Position | None
    stage_started_at: dict[str, datetime]
    timings: dict[str, float]
    notifications: list[dict[str, Any]]
    log: list[str]
    seen: list[str]
    version: int
    position: Position | None
    pages_crawled: NotRequired[int]
    tokens: NotRequired[dict[str, int]]
    cancel_requested_at: NotRequired[datetime]
    # Bookkeeping outside the fold (`rebuild.BOOKKEEPING`): the gateway's outbox and trace, the scheduler's re-drive.
    published: NotRequired[bool]
    outbox: NotRequired[dict[str, Any]]
    due_at: NotRequired[datetime | None]
    traceparent: NotRequired[str]
    redriven_at: NotRequired[datetime]
    notify_reconciled_at: NotRequired[datetime]


class ResultDocument(TypedDict):
    """One job's generated content in `results`: the `SeoResult` of its completion, with where it came from."""

    _id: str
    tenant: str
    event_id: str
    created_at: datetime
    meta: dict[str, Any]
    content: list[dict[str, Any]]
    faq: list[dict[str, Any]]
    schema: dict[str, Any]
