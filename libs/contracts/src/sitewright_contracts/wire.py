"""Events on the wire: JSON bodies, headers, and upcasters for old versions."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from .events import EVENT_ADAPTER, Event
from .topics import H_CONTENT_TYPE, H_EVENT_ID, H_EVENT_TYPE, H_PRIORITY, H_TRACEPARENT

Headers = list[tuple[str, bytes]]
CONTENT_TYPE = b"application/json"
# The largest body a consumer decodes (the consumers fetch at most 4 MiB a partition); larger is dead-lettered.
MAX_EVENT_BYTES = 4 * 1024 * 1024

# (type, version) -> function turning that version's raw dict into the next version's.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class UndecodableEvent(ValueError):
    """A message that is not a valid event of a known type; it belongs in the DLQ."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def new_traceparent() -> str:
    """A W3C traceparent for a new trace (the gateway starts one per job)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def child_traceparent(parent: str | None) -> str:
    """The same trace, a new span: what a service puts on the events it emits."""
    parts = (parent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return f"00-{parts[1]}-{os.urandom(8).hex()}-{parts[3]}"
    return new_traceparent()


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent (what logs carry so one job can be followed across services)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def encode(event: Event, traceparent: str | None = None, priority: int | None = None) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) for producing `event` onto a topic.

    `priority` defaults to the request's own priority for `job.requested`; other events get their job's
    priority from whoever emits them (the worker copies it from the message it handles).
    """
    value = event.model_dump_json(by_alias=True).encode()
    if priority is None:
        priority = getattr(event.data, "priority", None)
    headers: Headers = [
        (H_EVENT_TYPE, event.type.encode()),
        (H_EVENT_ID, event.event_id.encode()),
        (H_CONTENT_TYPE, CONTENT_TYPE),
        (H_TRACEPARENT, (traceparent or new_traceparent()).encode()),
    ]
    if priority is not None:
        headers.append((H_PRIORITY, str(priority).encode()))
    return event.job_id.encode(), value, headers


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode(errors="replace") if value is not None else None
    return None


def decode(value: bytes | None) -> Event:
    """Parse a message body into its event model, upcasting old versions first."""
    if not value:
        raise UndecodableEvent("empty", "the message has no body")
    if len(value) > MAX_EVENT_BYTES:
        raise UndecodableEvent("too_large", f"the body has {len(value)} bytes, more than {MAX_EVENT_BYTES}")
    if not UPCASTERS:
        # Fast path: pydantic parses and validates the bytes in one pass, about twice as fast as
        # json.loads and then validation; the path below explains what is wrong with a bad body.
        try:
            return EVENT_ADAPTER.validate_json(value)
        except (ValidationError, RecursionError):
            pass
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UndecodableEvent("malformed_json", str(exc)) from exc
    except RecursionError:
        raise UndecodableEvent("too_deep", "the JSON is nested too deeply to parse") from None
    if not isinstance(raw, dict):
        raise UndecodableEvent("malformed_json", "the body is not a JSON object")
    if not isinstance(raw.get("version", 1), int) or isinstance(raw.get("version"), bool):
        raise UndecodableEvent("invalid", f"version must be an integer, not {raw.get('version')!r:.50}")
    raw = upcast(raw)
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        kind = "unknown_type" if any(e["type"] == "union_tag_invalid" for e in exc.errors()) else "invalid"
        raise UndecodableEvent(kind, str(exc).replace("\n", " ")[:500]) from exc
    except RecursionError:
        raise UndecodableEvent("too_deep", "the event is nested too deeply to validate") from None


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Apply registered upcasters until the event is at its current version."""
    while (fn := UPCASTERS.get((str(raw.get("type")), int(raw.get("version", 1))))) is not None:
        raw = fn(raw)
    return raw
