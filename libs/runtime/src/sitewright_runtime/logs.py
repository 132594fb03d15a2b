"""Structured logging: human-readable on a terminal, JSON lines otherwise, with `service` bound.

Handlers run inside `log_context`, which binds `trace_id`, `job_id` and `event_id`
(contextvars, so every line a handler logs carries them): one job's lines can be
followed through all four services by its trace id.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import structlog

from sitewright_contracts.wire import trace_id

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
    shared: list[structlog.typing.Processor] = [
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
    # Lines from libraries (aiokafka, uvicorn) go through the same renderer, so a JSON log stays JSON lines.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([structlog.processors.format_exc_info] if json_output else []),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    handler.addFilter(_redact_record)
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # aiokafka logs every rebalance and retriable error at INFO/ERROR; keep what operators need.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


@contextlib.contextmanager
def log_context(*, job_id: str, event_id: str, traceparent: str | None, **extra: object) -> Iterator[None]:
    """Bind the job, the event and its trace to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(
        job_id=job_id, event_id=event_id, trace_id=trace_id(traceparent), **extra
    ):
        yield


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
