"""Value objects that events carry: job options, notify targets, errors, the crawl, the result."""

from __future__ import annotations

from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator

Stage = Literal["crawl", "generate"]
STAGES: tuple[Stage, ...] = ("crawl", "generate")

JobStatus = Literal["pending", "crawling", "generating", "parsing", "completed", "failed", "cancelled"]
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("pending", "crawling", "generating", "parsing")
TERMINAL_STATUSES: tuple[JobStatus, ...] = ("completed", "failed", "cancelled")
JOB_STATUSES: tuple[JobStatus, ...] = ACTIVE_STATUSES + TERMINAL_STATUSES

# Free-form JSON an event carries (JSON-LD) is this deep at most: a document that stores it (an audit page
# nests it about ten levels down) stays far inside MongoDB's 100-level limit, whoever produced the event.
MAX_JSON_DEPTH = 32


def storable_json(value: Any, depth: int = 0) -> Any:
    """`value` if MongoDB can store it: nested at most `MAX_JSON_DEPTH` levels, keys without NUL characters."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueError("a JSON key holds a NUL character")
            storable_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            storable_json(item, depth + 1)
    return value


# Hard caps: whatever a client asks for, a job never goes past these.
MAX_PAGES_CAP = 200
MAX_DEPTH_CAP = 5
CRAWL_TIMEOUT_CAP_S = 600
PAGE_BYTES_CAP = 10_000_000
JOB_BYTES_CAP = 200_000_000
CONCURRENCY_CAP = 16
DELAY_CAP_S = 10
REDIRECTS_CAP = 10
RETRIES_CAP = 5


class Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class JobOptions(BaseModel):
    """What a client may tune about one job. Unknown options are refused, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_pages: int = Field(default=10, ge=1, le=MAX_PAGES_CAP, description="Pages to crawl at most.")
    max_depth: int = Field(default=2, ge=0, le=MAX_DEPTH_CAP, description="Links to follow from the start page.")
    timeout_s: float = Field(
        default=60.0, gt=0, le=CRAWL_TIMEOUT_CAP_S, description="Total time the crawl may take, in seconds."
    )
    language: str | None = Field(default=None, max_length=16, description="Content language, e.g. 'en'.")
    scope: Literal["host", "domain"] = Field(
        default="host",
        description="`host`: the start page's host only; `domain`: also its subdomains (www. dropped first).",
    )
    max_bytes_per_page: int = Field(
        default=2_000_000, ge=10_000, le=PAGE_BYTES_CAP, description="Larger pages are skipped."
    )
    max_total_bytes: int = Field(
        default=20_000_000, ge=10_000, le=JOB_BYTES_CAP, description="Bytes the crawl may download."
    )
    concurrency: int = Field(default=4, ge=1, le=CONCURRENCY_CAP, description="Requests to one host at once.")
    delay_s: float = Field(
        default=0.0,
        ge=0,
        le=DELAY_CAP_S,
        description="Pause between requests to one host (robots.txt Crawl-delay wins if longer).",
    )
    max_redirects: int = Field(default=5, ge=0, le=REDIRECTS_CAP, description="Redirects followed per URL.")
    max_retries: int = Field(
        default=2, ge=0, le=RETRIES_CAP, description="Retries of a 5xx, 408 or 429 answer, with backoff."
    )
    use_sitemap: bool = Field(default=True, description="Also crawl the pages sitemap.xml lists.")


def one_email_address(value: str) -> str:
    """`value` as one valid e-mail address (normalized), or ValueError saying why it is not one.

    A list (`a@x.com,b@y.org`) or a header injection (CR/LF) is refused: the operator's mail account
    must send to exactly the address the tenant gave, never to others it smuggled in."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"an email target must be one e-mail address, such as owner@example.com: {exc}") from None


class NotifyTarget(BaseModel):
    """Where to tell the user about the outcome."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: Literal["webhook", "email", "sms"] = "webhook"
    target: str = Field(min_length=1, max_length=2048, description="Webhook URL, e-mail address or phone number.")

    @field_validator("target")
    @classmethod
    def _shape(cls, v: str, info: Any) -> str:
        channel = info.data.get("channel", "webhook")
        if channel == "webhook" and not v.lower().startswith(("http://", "https://")):
            raise ValueError("a webhook target must be an http:// or https:// URL")
        if channel == "email":
            return one_email_address(v)
        if channel == "sms" and not (v.startswith("+") and v[1:].isdigit() and 8 <= len(v) <= 16):
            raise ValueError("an sms target must be a phone number in E.164 form, e.g. +15551234567")
        return v


class ErrorInfo(Value):
    """Why a stage failed, in words for a person and a code for a program."""

    code: str
    message: str
    retryable: bool = False
    # A provider that asked us to wait (HTTP 429 Retry-After): the retry must not come sooner.
    retry_after_s: float | None = Field(default=None, ge=0)


class Heading(Value):
    level: int
    text: str


class PageSummary(Value):
    """What the crawler learned about one page, trimmed to what the generator needs."""

    url: str
    status: int = 200
    depth: int = 0
    title: str = ""
    description: str = ""
    canonical: str | None = None
    language: str | None = None
    headings: list[Heading] = Field(default_factory=list)
    text: str = ""
    json_ld: list[dict[str, Any]] = Field(default_factory=list)
    open_graph: dict[str, str] = Field(default_factory=dict)

    @field_validator("json_ld")
    @classmethod
    def _storable(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        storable_json(v)
        return v


class CrawlContext(Value):
    """The crawl handed to the generator: bounded in size so the event stays small."""

    start_url: str
    pages: list[PageSummary]
    pages_skipped: int = 0
    # Why pages were left out, e.g. {"not_html": 3, "robots_disallowed": 1, "duplicate": 2}.
    skipped: dict[str, int] = Field(default_factory=dict)
    # What the crawler dropped from pages it kept (structured data it could not carry), at most 20 lines.
    warnings: list[str] = Field(default_factory=list)
    bytes_fetched: int = 0
    duration_s: float = 0.0


class MetaTags(Value):
    title: str = Field(min_length=1, max_length=70)
    description: str = Field(min_length=1, max_length=170)


class ContentSection(Value):
    heading: str = Field(min_length=1)
    body: str = Field(min_length=1)


class FaqItem(Value):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class SeoResult(Value):
    """The generated content: the shape `GET /api/jobs/{id}/result` returns."""

    meta: MetaTags
    content: list[ContentSection] = Field(min_length=1)
    faq: list[FaqItem] = Field(default_factory=list)
    schema_: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, serialize_by_alias=True)

    @field_validator("schema_")
    @classmethod
    def _json_ld(cls, v: dict[str, Any]) -> dict[str, Any]:
        storable_json(v)
        if "schema.org" not in str(v.get("@context", "")):
            raise ValueError("JSON-LD must have an @context of https://schema.org")
        if not (v.get("@type") or v.get("@graph")):
            raise ValueError("JSON-LD must have an @type (or an @graph of typed nodes)")
        return v
