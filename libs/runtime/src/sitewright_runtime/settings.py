"""Settings every service shares; each service subclasses `ServiceSettings` with its own fields."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sitewright_contracts import Topics

from .kafka import FETCH_MAX_WAIT_MS
from .netguard import DEFAULT_PORTS

ENV_PREFIX = "SITEWRIGHT_"

# Loopback ranges the local embedded stack may crawl and call back (sites and webhooks on this machine).
LOCAL_ALLOW_CIDRS = ["127.0.0.0/8", "::1/128"]

# Secrets that protect nothing: placeholders and examples, compared case-insensitively and
# without a scheme prefix (`sw_`, `whsec_`), so `sw_changeme` counts as `changeme`.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "secret",
        "password",
        "passw0rd",
        "default",
        "admin",
        "test",
        "testing",
        "dev",
        "local",
        "example",
        "sample",
        "demo",
        "todo",
        "xxx",
        "none",
        "null",
        "insecure",
    }
)
SECRET_PREFIXES = ("sw_", "whsec_")
MIN_SECRET_LENGTH = 16


def insecure_secrets(settings: BaseSettings, fields: Iterable[str]) -> list[str]:
    """One message per secret among `fields` that is set but empty, short, a placeholder or its field's default.

    A secret left unset (None) is not reported: that turns its feature off
    (no bootstrap key, unsigned webhooks); a required one is refused by its
    field already.
    """
    problems = []
    prefix = settings.model_config.get("env_prefix", "")
    for name in fields:
        value = _plain(getattr(settings, name))
        if value is None:
            continue
        variable = f"{prefix}{name}".upper()
        default = _plain(type(settings).model_fields[name].default)
        bare = value.strip().lower()
        for p in SECRET_PREFIXES:
            bare = bare.removeprefix(p)
        if not value.strip():
            problems.append(f"{variable} is empty")
        elif value == default:
            problems.append(f"{variable} is left at its default, which anyone can read in the source")
        elif bare in KNOWN_DEFAULT_SECRETS or len(set(bare)) <= 2:
            problems.append(f"{variable} is a placeholder ({bare!r}), not a secret")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{variable} is shorter than {MIN_SECRET_LENGTH} characters")
    return problems


def _plain(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


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
    allowed_ports: list[int] | None = Field(
        default=None,
        description=(
            "Ports a crawled site or a webhook may use (JSON list). Unset: 80, 443, 8080 and 8443 in production, "
            "any in local mode."
        ),
    )
    protected_ports: list[int] = Field(
        default_factory=list,
        description=(
            "Ports of the stack's own services (JSON list), never reachable on an address allowed by exception "
            "(loopback in local mode). The broker's ports in SITEWRIGHT_KAFKA_BOOTSTRAP are always among them."
        ),
    )
    handler_attempts: int = Field(default=3, ge=1, le=20, description="Tries of a failing handler before DLQ.")
    max_in_flight: int = Field(default=256, ge=1, le=10_000, description="Messages a worker handles at once.")
    fetch_max_wait_ms: int = Field(
        default=FETCH_MAX_WAIT_MS,
        ge=1,
        le=10_000,
        description=(
            "How long a consumer's fetch waits for new messages: latency per hop against the CPU idle polling costs."
        ),
    )

    # Names of this service's secret settings: in production, start is refused when one is
    # empty or at a known default (see `insecure_secrets`). Each service lists its own.
    secret_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def guard_ports(self) -> list[int] | None:
        """The ports the SSRF guard allows (None: any)."""
        if self.allowed_ports is not None:
            return self.allowed_ports
        return None if self.env == "local" else list(DEFAULT_PORTS)

    @property
    def own_ports(self) -> list[int]:
        """`protected_ports` and the broker's own ports."""
        broker = [int(p) for p in re.findall(r":(\d+)(?:,|$)", self.kafka_bootstrap)]
        return sorted({*self.protected_ports, *broker})

    @model_validator(mode="after")
    def _local_allows_loopback(self) -> ServiceSettings:
        if self.env == "local" and not self.allow_cidrs:
            object.__setattr__(self, "allow_cidrs", list(LOCAL_ALLOW_CIDRS))
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> ServiceSettings:
        if self.env == "production" and (problems := insecure_secrets(self, self.secret_fields)):
            raise ValueError(
                "refusing to start in production with an unsafe secret: "
                + "; ".join(problems)
                + ". Set each to a long random value (e.g. `openssl rand -base64 32`),"
                " or SITEWRIGHT_ENV=local for a local run"
            )
        return self


S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised at start when settings are missing or invalid; the message names the variables."""


def load_settings(cls: type[S], **overrides: Any) -> S:
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
