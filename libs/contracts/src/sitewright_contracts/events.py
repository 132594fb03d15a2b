"""Every fact about a job, one frozen model per event type.

Past-tense names for facts, `*_requested` for what a client asked for. The
envelope fields live on `Event`; each type adds a typed `data` payload. To
change a contract, add fields with defaults; a breaking change bumps
`version` and registers an upcaster in `wire.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .ids import uuid7
from .models import CrawlContext, ErrorInfo, JobOptions, NotifyTarget, SeoResult, Stage


def utcnow() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every event's `data`: frozen, and tolerant of fields added later."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(BaseModel):
    """The envelope every event on the log shares."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Which stage (if any) this event reports on; used by the projector and metrics.
    stage: ClassVar[Stage | None] = None

    event_id: str = Field(default_factory=uuid7)
    type: str
    version: int = 1
    job_id: str
    tenant: str = "default"
    attempt: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str = "unknown"
    data: Payload = Field(default_factory=Payload)


# ---- requests from clients (emitted by the gateway) -------------------------------------------


class JobRequestedData(Payload):
    url: str
    options: JobOptions = Field(default_factory=JobOptions)
    notify: list[NotifyTarget] = Field(default_factory=list)
    priority: int = 5


class JobRequested(Event):
    type: Literal["job.requested"] = "job.requested"
    data: JobRequestedData


class JobCancelRequestedData(Payload):
    reason: str = "cancelled by the user"


class JobCancelRequested(Event):
    type: Literal["job.cancel_requested"] = "job.cancel_requested"
    data: JobCancelRequestedData = Field(default_factory=JobCancelRequestedData)


class JobRetryRequestedData(Payload):
    stage: Stage
    reason: str = "retry"
    # The crawl to generate from when the generate stage is retried (it is not re-crawled).
    crawl: CrawlContext | None = None
    url: str | None = None
    options: JobOptions | None = None
    # LLM tokens the job has spent in earlier attempts, so the generator keeps to the per-job cap.
    tokens_spent: int = Field(default=0, ge=0)
    # Who is told of the job's outcome; carried to it so the notifier needs no read model (None: not said).
    notify: list[NotifyTarget] | None = None


class JobRetryRequested(Event):
    type: Literal["job.retry_requested"] = "job.retry_requested"
    data: JobRetryRequestedData


# ---- crawl stage ------------------------------------------------------------------------------


class CrawlStartedData(Payload):
    url: str


class CrawlStarted(Event):
    stage: ClassVar[Stage | None] = "crawl"
    type: Literal["crawl.started"] = "crawl.started"
    data: CrawlStartedData


class CrawlProgressData(Payload):
    pages_done: int
    pages_estimated: int
    progress: int = Field(ge=10, le=30)


class CrawlProgress(Event):
    stage: ClassVar[Stage | None] = "crawl"
    type: Literal["crawl.progress"] = "crawl.progress"
    data: CrawlProgressData


class CrawlSucceededData(Payload):
    crawl: CrawlContext
    # The request's notify targets, on their way to the job's outcome (None: a producer that did not carry them).
    notify: list[NotifyTarget] | None = None


class CrawlSucceeded(Event):
    stage: ClassVar[Stage | None] = "crawl"
    type: Literal["crawl.succeeded"] = "crawl.succeeded"
    data: CrawlSucceededData


class StageFailedData(Payload):
    error: ErrorInfo
    # LLM tokens the failed attempt consumed (generate stage only): failures cost money too.
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)


class CrawlFailed(Event):
    stage: ClassVar[Stage | None] = "crawl"
    type: Literal["crawl.failed"] = "crawl.failed"
    data: StageFailedData


# ---- generate stage ---------------------------------------------------------------------------


class GenerationStartedData(Payload):
    provider: str
    model: str


class GenerationStarted(Event):
    stage: ClassVar[Stage | None] = "generate"
    type: Literal["generation.started"] = "generation.started"
    data: GenerationStartedData


class GenerationProgressData(Payload):
    progress: int = Field(ge=40, le=80)
    detail: str = ""


class GenerationProgress(Event):
    stage: ClassVar[Stage | None] = "generate"
    type: Literal["generation.progress"] = "generation.progress"
    data: GenerationProgressData


class ParsingStarted(Event):
    stage: ClassVar[Stage | None] = "generate"
    type: Literal["parsing.started"] = "parsing.started"


class GenerationFailed(Event):
    stage: ClassVar[Stage | None] = "generate"
    type: Literal["generation.failed"] = "generation.failed"
    data: StageFailedData


# ---- outcomes ---------------------------------------------------------------------------------


class OutcomeData(Payload):
    """What every outcome carries for the notifier: the job's site and whom to tell.

    `notify` None means the producer predates targets travelling with the job (the notifier then
    falls back to the request it saw); [] means nobody is to be told."""

    url: str | None = None
    notify: list[NotifyTarget] | None = None


class JobCompletedData(OutcomeData):
    result: SeoResult
    pages_crawled: int = 0
    provider: str = ""
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)


class JobCompleted(Event):
    type: Literal["job.completed"] = "job.completed"
    data: JobCompletedData


class JobFailedData(OutcomeData):
    stage: Stage
    error: ErrorInfo


class JobFailed(Event):
    type: Literal["job.failed"] = "job.failed"
    data: JobFailedData


class JobCancelledData(OutcomeData):
    reason: str = "cancelled by the user"


class JobCancelled(Event):
    type: Literal["job.cancelled"] = "job.cancelled"
    data: JobCancelledData = Field(default_factory=JobCancelledData)


# ---- notifications ----------------------------------------------------------------------------


class NotificationData(Payload):
    channel: str
    target: str
    outcome: str
    outcome_event_id: str
    status_code: int | None = None
    error: str | None = None
    # Which try of this delivery the event reports, and whether another one is scheduled.
    delivery_attempt: int = 1
    next_attempt_at: datetime | None = None


class NotificationSent(Event):
    type: Literal["notification.sent"] = "notification.sent"
    data: NotificationData


class NotificationFailed(Event):
    type: Literal["notification.failed"] = "notification.failed"
    data: NotificationData


# ---- control (broadcast on jobs.control) ------------------------------------------------------


class StageControlData(Payload):
    stage: Stage


class StagePaused(Event):
    type: Literal["stage.paused"] = "stage.paused"
    data: StageControlData


class StageResumed(Event):
    type: Literal["stage.resumed"] = "stage.resumed"
    data: StageControlData


JobEvent = Annotated[
    JobRequested
    | JobCancelRequested
    | JobRetryRequested
    | CrawlStarted
    | CrawlProgress
    | CrawlSucceeded
    | CrawlFailed
    | GenerationStarted
    | GenerationProgress
    | ParsingStarted
    | GenerationFailed
    | JobCompleted
    | JobFailed
    | JobCancelled
    | NotificationSent
    | NotificationFailed
    | StagePaused
    | StageResumed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(JobEvent)
EVENT_TYPES: dict[str, type[Event]] = {cls.model_fields["type"].default: cls for cls in get_args(get_args(JobEvent)[0])}
