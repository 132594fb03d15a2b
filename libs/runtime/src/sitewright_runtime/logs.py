"""Structured logging: human-readable on a terminal, JSON lines otherwise, with `service` bound."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# What an API key (`sw_…`) or a webhook secret (`whsec_…`) looks like; never written to a log, whatever logs it.
_SECRET = re.compile(r"\b(sw|whsec)_[A-Za-z0-9_\-+/=]{8,}")


def redact(text: str) -> str:
    """`text` with anything shaped like an API key or webhook secret replaced by its kind and `…redacted`."""
    return _SECRET.sub(lambda m: f"{m.group(1)}_…redacted", text)


def _redact_record(record: logging.LogRecord) -> bool:
    """The same for lines from libraries (stdlib logging), as a handler filter."""
    message = record.getMessage()
    if "sw_" in message or "whsec_" in message:
        record.msg, record.args = redact(message), None
    return True


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name, value in event.items():
        if isinstance(value, str) and ("sw_" in value or "whsec_" in value):
            event[name] = redact(value)
    return event


def configure_logging(service: str, *, fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger for one service process."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks become text before redaction (an exception's message may hold a key), in both
    # formats: that also keeps rich's tracebacks, which show local variables, out of the log.
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_record)
    # aiokafka logs every rebalance and retriable error at INFO/ERROR; keep what operators need.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
