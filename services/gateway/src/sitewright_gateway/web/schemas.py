"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sitewright_contracts.models import JobOptions, JobStatus, NotifyTarget, Stage

from ..readmodel.documents import JobDocument

MAX_URL_LENGTH = 2048


class JobCreate(BaseModel):
    """A request to turn a website into SEO content."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=MAX_URL_LENGTH,
        description="The site's start page, http:// or https://.",
        # Documentation only (the validator below gives the clear message): lets clients and fuzzers make valid URLs.
        json_schema_extra={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]+"},
    )
    options: JobOptions = Field(default_factory=JobOptions)
    notify: list[NotifyTarget] = Field(default_factory=list, max_length=10)
    priority: int = Field(default=5, ge=0, le=9, description="0 is lowest, 9 highest.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        v = v.strip()
        parts = urlsplit(v)
        if not parts.scheme or not parts.netloc:
            raise ValueError("must be an absolute URL such as https://example.com/")
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"scheme {parts.scheme!r} is not supported; use http:// or https://")
        if not parts.hostname:
            raise ValueError("the URL has no host name")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"the URL's port is not valid ({exc})") from exc
        return v


MAX_BULK_JOBS = 1000
MAX_BULK_BYTES = 4 * 1024 * 1024  # a bulk body's limit: 1,000 jobs with options and targets


class JobLinks(BaseModel):
    self: str
    events: str
    result: str


class JobAccepted(BaseModel):
    id: str
    status: JobStatus
    links: JobLinks


class JobError(BaseModel):
    code: str
    message: str
    retryable: bool = False
    retry_after_s: float | None = None
    stage: Stage | None = None


class JobView(BaseModel):
    """A job's status as the read model has it."""

    id: str
    status: JobStatus
    stage: Stage
    progress: int
    attempt: int
    attempts: dict[str, int]
    url: str
    options: dict[str, Any]
    priority: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    error: JobError | None = None
    pages_crawled: int | None = None
    tokens: dict[str, int] | None = Field(default=None, description="LLM tokens spent over all attempts: in, out.")
    result_summary: dict[str, Any] | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    notifications: list[dict[str, Any]] = Field(default_factory=list)
    log: list[str] = Field(default_factory=list)
    version: int
    links: JobLinks

    @classmethod
    def from_doc(cls, doc: JobDocument | dict[str, Any]) -> JobView:
        return cls(id=doc["_id"], links=links(doc["_id"]), **{k: v for k, v in doc.items() if k != "_id"})


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


class EventView(BaseModel):
    event_id: str
    type: str
    attempt: int
    occurred_at: datetime
    producer: str
    partition: int
    offset: int
    data: dict[str, Any]
    version: int | None = Field(default=None, description="The job's version right after this event.")


class BulkCreate(BaseModel):
    """Many jobs at once: each item is checked and accepted or refused on its own."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BULK_JOBS,
        description=f"Up to {MAX_BULK_JOBS} jobs, each the body of `POST /api/jobs` (a `JobCreate`).",
    )


class BulkItem(BaseModel):
    """One job of a bulk submission: accepted (202, with its id) or refused (422 invalid, 429 not now)."""

    index: int
    status: int
    id: str | None = None
    links: JobLinks | None = None
    error: str | None = None
    retry_after_s: int | None = None


class BulkAccepted(BaseModel):
    accepted: int
    refused: int
    items: list[BulkItem]


def links(job_id: str) -> JobLinks:
    base = f"/api/jobs/{job_id}"
    return JobLinks(self=base, events=f"{base}/events", result=f"{base}/result")
