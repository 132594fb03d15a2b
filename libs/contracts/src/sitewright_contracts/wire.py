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
    if not UPCASTERS:
        # Fast path: pydantic parses and validates the bytes in one pass, about twice as fast as
        # json.loads and then validation; the path below explains what is wrong with a bad body.
        try:
            return EVENT_ADAPTER.validate_json(value)
        except ValidationError:
            pass
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UndecodableEvent("malformed_json", str(exc)) from exc
    if not isinstance(raw, dict):
        raise UndecodableEvent("malformed_json", "the body is not a JSON object")
    raw = upcast(raw)
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        kind = "unknown_type" if any(e["type"] == "union_tag_invalid" for e in exc.errors()) else "invalid"
        raise UndecodableEvent(kind, str(exc).replace("\n", " ")[:500]) from exc


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Apply registered upcasters until the event is at its current version."""
    while (fn := UPCASTERS.get((str(raw.get("type")), int(raw.get("version", 1))))) is not None:
        raw = fn(raw)
    return raw
