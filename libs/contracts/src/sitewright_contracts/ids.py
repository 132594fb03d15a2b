"""UUIDv7 identifiers: time-ordered, so ids sort by creation and page well as cursors."""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def _uuid7(ms: int, rand: bytes) -> str:
    """Lay out RFC 9562 UUIDv7: 48-bit ms timestamp, version, 74 bits of `rand`."""
    r = int.from_bytes(rand[:10], "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((r >> 62) & 0x0FFF) << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= r & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def uuid7(ms: int | None = None) -> str:
    """A new random UUIDv7 (of millisecond `ms` since the epoch, or of now)."""
    return _uuid7(time.time_ns() // 1_000_000 if ms is None else ms, os.urandom(10))


def derived_uuid7(cause_id: str, *parts: object) -> str:
    """A UUIDv7 that is the same every time for the same cause and parts.

    Stage services derive the ids of the events they emit from the event they
    handle, so a redelivered input yields the same output ids and every
    consumer downstream can drop the duplicate by `event_id`. The timestamp is
    the cause's, so derived ids still sort after their cause.
    """
    cause = uuid.UUID(cause_id)
    ms = cause.int >> 80 if cause.version == 7 else time.time_ns() // 1_000_000
    digest = hashlib.sha256("|".join([cause_id, *map(str, parts)]).encode()).digest()
    return _uuid7(ms, digest)


def uuid7_time_ms(value: str) -> int:
    """Milliseconds since the epoch encoded in a UUIDv7."""
    return uuid.UUID(value).int >> 80


def uuid7_floor(ms: int) -> str:
    """The smallest UUIDv7 of millisecond `ms`: ids below it (as strings too) were made earlier."""
    return _uuid7(ms, bytes(10))
