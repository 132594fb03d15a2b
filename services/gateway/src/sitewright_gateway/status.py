"""What `/api/status` (the caller's last hour, plus what the gateway can check of the system) and
`/api/debug/{id}` (everything about one job) report: the reads are here, the rules in `diagnostics.py`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, status

from sitewright_contracts import uuid7_floor

from . import diagnostics as dx
from .readmodel import audit
from .readmodel.store import active_jobs, tenant_job, tenant_jobs
from .scheduler.loop import LEASE_ID
from .state import GatewayState

# The status scan reads at most this many of the tenant's most recently created jobs (about 1 s on
# SecantusDB at its worst); past it the figures describe the newest ones and say `sampled`.
MAX_SCAN = 2000
MAX_EVENTS = 2000
CHECK_TIMEOUT_S = 2.0
_WINDOW_FIELDS = {"status": 1, "created_at": 1, "started_at": 1, "finished_at": 1, "timings": 1, "error.code": 1}


async def tenant_status(state: GatewayState, tenant: str) -> dict[str, Any]:
    """The last hour of the caller's jobs: totals, statuses, completion rate, stuck and failed counts,
    stage timings (average and p95), per-minute throughput, configuration checks and recommendations."""
    now = datetime.now(UTC)
    jobs = state.store.jobs
    stuck_after = state.settings.stuck_after_s
    # Jobs created in the window: UUIDv7 ids are time-ordered, so this is a range of the status index's `_id`.
    window = {"$gte": uuid7_floor(int((now - dx.WINDOW).timestamp() * 1000))}
    quiet_since = now - timedelta(seconds=stuck_after)

    async def count_stuck() -> int:
        return sum([1 async for d in active_jobs(jobs, tenant, {"updated_at": 1}) if d["updated_at"] < quiet_since])

    docs, stuck, oldest_pending, checks = await asyncio.gather(
        tenant_jobs(jobs, tenant, window, MAX_SCAN, _WINDOW_FIELDS),
        count_stuck(),
        jobs.find_one({"tenant": tenant, "status": "pending"}, {"created_at": 1}, sort=[("_id", 1)]),
        system_checks(state, now),
    )
    figures = dx.window_figures(docs, now)
    provider_check, provider = dx.provider_check(dict(os.environ))
    checks.append(provider_check)
    oldest_pending_s = (now - oldest_pending["created_at"]).total_seconds() if oldest_pending else None
    return {
        "generated_at": now,
        "tenant": tenant,
        **figures,
        "stuck": stuck,
        "stuck_after_s": stuck_after,
        "oldest_pending_s": oldest_pending_s,
        "scanned": len(docs),
        "sampled": len(docs) >= MAX_SCAN,
        "config": {"checks": [c.as_dict() for c in checks], "provider": provider},
        "recommendations": dx.recommendations(figures, checks, stuck, oldest_pending_s, stuck_after),
    }


async def system_checks(state: GatewayState, now: datetime) -> list[dx.Check]:
    """Broker, database, projector and scheduler, as this gateway process sees them now."""
    broker, database, lease = await asyncio.gather(_broker(state), _database(state), _lease(state))
    projector = state.projector.running
    checks = [
        broker,
        database,
        dx.Check(
            "projector",
            projector,
            f"running, {state.projection.applied} events applied by this gateway" if projector else "not running",
        ),
    ]
    if lease is None or lease["expires_at"] < now:
        checks.append(dx.Check("scheduler", False, "no gateway holds the scheduler lease"))
    else:
        who = "this gateway" if lease["owner"] == state.scheduler.owner else "another gateway instance"
        checks.append(dx.Check("scheduler", True, f"lease held by {who}"))
    return checks


async def _broker(state: GatewayState) -> dx.Check:
    if not state.publisher.started:
        return dx.Check("broker", False, "the publisher is not connected")
    started = time.perf_counter()
    if await state.publisher.ping(CHECK_TIMEOUT_S):
        return dx.Check("broker", True, f"reachable ({(time.perf_counter() - started) * 1000:.0f} ms)")
    return dx.Check("broker", False, f"no answer to a metadata request within {CHECK_TIMEOUT_S:g} s")


async def _database(state: GatewayState) -> dx.Check:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(state.client.admin.command("ping"), CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure means the same thing here: it does not answer
        return dx.Check("database", False, f"ping failed ({type(exc).__name__})")
    return dx.Check("database", True, f"ping {(time.perf_counter() - started) * 1000:.0f} ms")


async def _lease(state: GatewayState) -> dict[str, Any] | None:
    try:
        return await asyncio.wait_for(state.store.leases.find_one({"_id": LEASE_ID}), CHECK_TIMEOUT_S)
    except Exception:
        return None


async def debug_job(state: GatewayState, tenant: str, job_id: str) -> dict[str, Any]:
    """Everything about one of the caller's jobs, for diagnosing it: the document, the audit trail with
    log positions, attempts per stage, errors, result sizes, timings and a short diagnosis."""
    job = await tenant_job(state.store.jobs, job_id, tenant)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id!r}")
    now = datetime.now(UTC)
    events, result = await asyncio.gather(
        audit.job_events(state.store.events, job_id),
        state.store.results.find_one({"_id": job_id}, {"_id": 0, "tenant": 0}),
    )
    events = events[:MAX_EVENTS]
    return {
        "id": job_id,
        "generated_at": now,
        "diagnosis": dx.diagnosis(job, now, state.settings.stuck_after_s),
        "job": {k: v for k, v in job.items() if k != "_id"},
        "events": [_event_row(e) for e in events],
        "events_truncated": len(events) >= MAX_EVENTS,
        "attempts": dx.attempts(events),
        "errors": dx.errors(job, events),
        "timings": dx.job_timings(job, events, now),
        "result": _result_sizes(result),
    }


def _event_row(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": e["_id"],
        "type": e["type"],
        "attempt": e["attempt"],
        "occurred_at": e["occurred_at"],
        "producer": e.get("producer"),
        "partition": e.get("partition"),
        "offset": e.get("offset"),
        "data_bytes": _size(e.get("data")),
        "data": e.get("data"),
    }


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str, ensure_ascii=False).encode())


def _result_sizes(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"stored": False}
    return {
        "stored": True,
        "stored_at": result.get("created_at"),
        "event_id": result.get("event_id"),
        "bytes": {part: _size(result.get(part)) for part in ("meta", "content", "faq", "schema")},
        "total_bytes": _size({k: v for k, v in result.items() if k in ("meta", "content", "faq", "schema")}),
        "sections": len(result.get("content") or []),
        "faq": len(result.get("faq") or []),
        "title_chars": len((result.get("meta") or {}).get("title", "")),
        "description_chars": len((result.get("meta") or {}).get("description", "")),
    }
