"""Gateway settings (`SITEWRIGHT_*`)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from sitewright_runtime.links import LinkSettings
from sitewright_runtime.settings import ServiceSettings

from .readmodel.rules import RetryPolicy


class GatewaySettings(ServiceSettings, LinkSettings):
    mongo_url: str = Field(
        description="MongoDB connection string, e.g. mongodb://mongo:27017/?replicaSet=rs0&w=majority."
    )
    mongo_db: str = "sitewright"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    public_url: str = Field(default="", description="Base URL clients use to reach this gateway (for links).")
    default_tenant: str = Field(
        default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The tenant the bootstrap key belongs to."
    )
    bootstrap_api_key: SecretStr | None = Field(
        default=None,
        description="An admin API key of the default tenant, created at start if missing (for scripts and tests).",
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    http_max_in_flight: int = Field(
        default=64,
        ge=0,
        description="HTTP requests one gateway answers at once; past it a new one gets 429 with Retry-After at once "
        "(streams, probes and /metrics excepted; 0: no limit).",
    )
    rate_jobs_per_s: float = Field(
        default=10, ge=0, description="Jobs one API key may create per second, per gateway instance (0: no limit)."
    )
    rate_jobs_burst: float = Field(
        default=50, ge=1, description="Jobs one API key may create at once before the rate applies."
    )
    admission_max_active_per_tenant: int = Field(
        default=10_000, ge=0, description="Unfinished jobs one tenant may have before new ones get 429 (0: no limit)."
    )
    admission_max_active: int = Field(
        default=50_000, ge=0, description="Unfinished jobs over all tenants before new ones get 429 (0: no limit)."
    )
    rate_stream_msgs_per_s: float = Field(
        default=20, ge=0, description="Messages one stream connection may send per second (0: no limit)."
    )
    rate_stream_burst: float = Field(default=100, ge=1)
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API and open streams (JSON list, e.g. ["https://app.example"]).',
    )
    projector_group: str = "sitewright-projector"
    retry_max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_s: list[float] = Field(default_factory=lambda: [60.0, 300.0, 900.0], min_length=1)
    stuck_after_s: float = Field(default=600, gt=0, description="An active job with no event this long is re-driven.")
    outbox_grace_s: float = Field(default=5, gt=0, description="Republish a request left unpublished this long.")
    retention_days: float = Field(
        default=7, gt=0, description="Finished jobs, their events, results and dead letters expire after this."
    )
    notify_reconcile_after_s: float = Field(
        default=600,
        gt=0,
        description="A finished job with notify targets and no notification on record this long after its outcome "
        "gets its outcome sent to the notifier again (which sends only what it never did).",
    )
    scheduler_interval_s: float = Field(default=1.0, gt=0)
    lease_ttl_s: float = Field(default=10, gt=0)
    stream_heartbeat_s: float = Field(default=15, gt=0, description="A job stream idle this long gets a heartbeat.")
    stream_max_per_key: int = Field(
        default=20, ge=1, description="Open job streams per API key (per gateway instance)."
    )
    stream_queue_size: int = Field(
        default=1000,
        ge=1,
        description="Messages a job stream may have waiting; a client further behind is dropped.",
    )
    stream_feed_idle_s: float = Field(
        default=60,
        gt=0,
        description="The hub's change stream closes when no job stream has been open this long.",
    )
    stream_allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to open a WebSocket besides the gateway's own.",
    )

    # Refused at start in production when left empty or at a known default (see ServiceSettings).
    secret_fields: ClassVar[tuple[str, ...]] = ("bootstrap_api_key",)

    @field_validator("bootstrap_api_key")
    @classmethod
    def _key_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and v.get_secret_value() and not v.get_secret_value().startswith("sw_"):
            raise ValueError(
                "an API key starts with `sw_`; make one with "
                "`python -c \"import secrets; print('sw_' + secrets.token_urlsafe(32))\"`"
            )
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        from .web.origins import normalize_origin

        return [normalize_origin(o) if o != "*" else o for o in v]

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)

    @property
    def notify_reconcile_after(self) -> timedelta:
        return timedelta(seconds=self.notify_reconcile_after_s)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.retry_max_attempts, backoff_s=tuple(self.retry_backoff_s))
