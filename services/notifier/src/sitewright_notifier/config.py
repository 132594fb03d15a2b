"""Notifier settings (`SITEWRIGHT_*`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from sitewright_runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    notifier_group: str = "sitewright-notifier"
    mongo_url: str = Field(description="MongoDB connection string (the read model: notify targets, sent log).")
    mongo_db: str = "sitewright"
    public_url: str = Field(default="http://127.0.0.1:8000", description="Gateway base URL used in result links.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks signing secret (whsec_<base64>); unsigned when unset."
    )
    webhook_timeout_s: float = Field(default=10, gt=0, le=60)
    webhook_attempts: int = Field(default=3, ge=1, le=10)

    # Refused at start in production when left empty or at a known default (see ServiceSettings).
    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_secret",)
