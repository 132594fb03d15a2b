"""The stream protocol's messages: one job version (`Update`, encoded once per transport), controls and close codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

# Close codes of the protocol (docs: briefs/stream-protocol.md, README).
CLOSE_UNAUTHORIZED = 4401
CLOSE_ORIGIN = 4403
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_MANY = 4429
CLOSE_BAD_MESSAGE = 1008
CLOSE_RESTART = 1012

_ERROR_FIELDS = ("code", "message", "retryable", "stage")


def rfc3339(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")


def control(kind: str, **fields: Any) -> dict[str, Any]:
    """A non-job message: `ready`, `heartbeat` or `error`."""
    return {"type": kind, **fields}


class Update:
    """One version of one job, encoded at most once per transport whatever the number of receivers."""

    __slots__ = ("job_id", "tenant", "version", "payload", "_text", "_sse")

    def __init__(self, tenant: str, payload: dict[str, Any]):
        self.job_id: str = payload["job_id"]
        self.tenant = tenant
        self.version: int = payload["version"]
        self.payload = payload
        self._text: str | None = None
        self._sse: bytes | None = None

    @classmethod
    def from_event(cls, doc: dict[str, Any]) -> Update:
        """From one audit-trail event (`audit.events_of`; the state it stores is the job's right after it)."""
        job = doc.get("job") or {}
        return cls(
            doc["tenant"],
            _payload(doc["job_id"], doc["version"], job, doc.get("type"), doc["_id"], doc.get("occurred_at")),
        )

    @classmethod
    def from_job(cls, job: dict[str, Any], event: dict[str, Any] | None) -> Update:
        """From a job document: its current version (with the event that made it, once recorded)."""
        return cls(
            job["tenant"],
            _payload(
                job["_id"],
                job["version"],
                job,
                event.get("type") if event else None,
                event["_id"] if event else None,
                event.get("occurred_at") if event else job.get("updated_at"),
            ),
        )

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self.payload, separators=(",", ":"))
        return self._text

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = f"id: {self.job_id}:{self.version}\nevent: job\ndata: {self.text}\n\n".encode()
        return self._sse


def _payload(
    job_id: str, version: int, job: dict[str, Any], event_type: str | None, event_id: str | None, at: Any
) -> dict[str, Any]:
    error = job.get("error")
    return {
        "type": "job",
        "job_id": job_id,
        "version": version,
        "status": job.get("status"),
        "stage": job.get("stage"),
        "progress": job.get("progress"),
        "attempt": job.get("attempt"),
        "event_type": event_type,
        "event_id": event_id,
        "occurred_at": rfc3339(at) if isinstance(at, datetime) else at,
        "url": job.get("url"),
        "error": {k: error.get(k) for k in _ERROR_FIELDS} if error else None,
    }
