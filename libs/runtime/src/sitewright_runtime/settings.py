"""Settings every service shares; each service subclasses `ServiceSettings` with its own fields."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sitewright_contracts import Topics

ENV_PREFIX = "SITEWRIGHT_"

# Loopback ranges the local embedded stack may crawl and call back (sites and webhooks on this machine).
LOCAL_ALLOW_CIDRS = ["127.0.0.0/8", "::1/128"]


class ServiceSettings(BaseSettings):
    """Connection and runtime settings; read from `SITEWRIGHT_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    env: Literal["local", "production"] = Field(
        default="production",
        description="`local` allows crawling loopback so that sites on this machine work; production refuses it.",
    )
    kafka_bootstrap: str = Field(description="Kafka bootstrap servers, e.g. 127.0.0.1:9092.")
    topic_partitions: int = Field(default=8, ge=1, le=1024)
    topic_prefix: str = Field(default="", description="Prepended to every topic name (tests use a unique one).")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    allow_cidrs: list[str] = Field(
        default_factory=list,
        description="Address ranges that may be crawled or called back despite being private (JSON list).",
    )
    handler_attempts: int = Field(default=3, ge=1, le=20, description="Tries of a failing handler before DLQ.")
    max_in_flight: int = Field(default=256, ge=1, le=10_000, description="Messages a worker handles at once.")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @model_validator(mode="after")
    def _local_allows_loopback(self) -> "ServiceSettings":
        if self.env == "local" and not self.allow_cidrs:
            object.__setattr__(self, "allow_cidrs", list(LOCAL_ALLOW_CIDRS))
        return self


S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised at start when settings are missing or invalid; the message names the variables."""


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment, failing fast with the variable names that are wrong."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = []
        for err in exc.errors():
            if not err["loc"]:  # a check across fields: its message names the variables itself
                lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
                continue
            name = (prefix + "_".join(str(p) for p in err["loc"])).upper()
            what = "is required" if err["type"] == "missing" else f"is invalid: {err['msg']}"
            lines.append(f"  {name} {what}")
        raise SettingsError(f"{cls.__name__}: cannot start:\n" + "\n".join(lines)) from None
