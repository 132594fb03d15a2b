"""Sitewright's event contracts: the envelope, one model per event type, topics and wire format."""

from .events import *  # noqa: F403
from .events import EVENT_TYPES, Event, Payload, utcnow
from .ids import derived_uuid7, uuid7, uuid7_floor
from .models import *  # noqa: F403
from .topics import ALL_TOPICS, JOBS_CONTROL, JOBS_DLQ, JOBS_EVENTS, Topics
from .wire import UndecodableEvent, decode, encode, header

__all__ = [
    "ALL_TOPICS",
    "EVENT_TYPES",
    "JOBS_CONTROL",
    "JOBS_DLQ",
    "JOBS_EVENTS",
    "Topics",
    "Event",
    "Payload",
    "UndecodableEvent",
    "decode",
    "derived_uuid7",
    "encode",
    "header",
    "utcnow",
    "uuid7",
    "uuid7_floor",
]
