"""Notifier settings (`SITEWRIGHT_*`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from sitewright_runtime.links import LinkSettings
from sitewright_runtime.settings import ServiceSettings

from .retry import RetrySchedule


class NotifierSettings(ServiceSettings, LinkSettings):
    notifier_group: str = "sitewright-notifier"
    mongo_url: str = Field(description="MongoDB connection string (the read model: notify targets, deliveries).")
    mongo_db: str = "sitewright"
    public_url: str = Field(default="http://127.0.0.1:8000", description="Gateway base URL used in result links.")

    # Deliveries: tried at once, then after each of these delays (with jitter), then given up.
    retry_delays_s: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0],
        min_length=0,
        max_length=20,
        description="Waits between the tries of one notification, in seconds (JSON list).",
    )
    retry_jitter: float = Field(default=0.2, ge=0, lt=1, description="Each wait is scaled by 1 ± this, at random.")
    delivery_poll_s: float = Field(default=1.0, gt=0, description="How often due deliveries are looked for.")
    delivery_lease_s: float = Field(
        default=120, gt=0, description="A try not finished this long (its instance died) is taken over by another."
    )
    delivery_concurrency: int = Field(default=64, ge=1, le=1000, description="Tries in flight at once per instance.")
    max_retry_after_s: float = Field(default=3600, ge=0, description="Cap on a receiver's Retry-After.")

    webhook_timeout_s: float = Field(default=10, gt=0, le=60)

    smtp_host: str | None = Field(default=None, description="SMTP server; e-mail targets fail when unset.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool | None = Field(
        default=True, description="Upgrade with STARTTLS (true: required, null: when offered, false: never)."
    )
    smtp_tls: bool = Field(default=False, description="Implicit TLS from the first byte (port 465).")
    smtp_ca_file: str | None = Field(default=None, description="CA bundle for a mail server with a private CA.")
    smtp_from: str = "Sitewright <notifications@sitewright.invalid>"
    smtp_timeout_s: float = Field(default=30, gt=0, le=300)

    sms_base_url: str = Field(default="https://api.twilio.com", description="Twilio, or a Twilio-compatible API.")
    sms_account_sid: str | None = None
    sms_auth_token: SecretStr | None = None
    sms_from: str | None = Field(default=None, description="Sender number (E.164) or messaging service id.")
    sms_timeout_s: float = Field(default=15, gt=0, le=120)

    @property
    def retry_schedule(self) -> RetrySchedule:
        return RetrySchedule(delays_s=tuple(self.retry_delays_s), jitter=self.retry_jitter)

    # Refused at start in production when left empty or at a known default (see ServiceSettings);
    # the link secret is checked by LinkSettings.
    secret_fields: ClassVar[tuple[str, ...]] = ("smtp_password", "sms_auth_token")
