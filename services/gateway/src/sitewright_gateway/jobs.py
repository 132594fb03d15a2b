"""One job as the routes see it: look it up for its tenant, read its trail and result, cancel or retry it.

Commands publish events whose ids derive from the job's current version, so a double click (or a
client retrying a timed-out request) publishes the same event twice, which every consumer drops as
a duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, status

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import TERMINAL_STATUSES

from .intake import PUBLISH_TIMEOUT_S
from .readmodel import audit
from .readmodel.rules import outcome_of, state_as_of
from .readmodel.store import tenant_job
from .state import GatewayState

MAX_EVENTS = 1000


async def own_job(state: GatewayState, tenant: str, job_id: str) -> dict[str, Any]:
    """The caller's job, or 404 (another tenant's job too)."""
    doc = await tenant_job(state.store.jobs, job_id, tenant)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id!r}")
    return doc


async def events(state: GatewayState, tenant: str, job_id: str) -> list[dict[str, Any]]:
    """The job's audit trail, in the order the events happened (at most `MAX_EVENTS`)."""
    await own_job(state, tenant, job_id)
    trail = await audit.job_events(state.store.events, job_id)
    return sorted(trail, key=lambda d: (d["occurred_at"], d["_id"]))[:MAX_EVENTS]


async def as_of(state: GatewayState, tenant: str, job_id: str, at: datetime) -> dict[str, Any]:
    """Time travel: the job as it was at `at`, rebuilt from its events; 404 before it was requested."""
    await own_job(state, tenant, job_id)
    trail = await audit.job_events(state.store.events, job_id)
    doc = state_as_of(trail, at if at.tzinfo else at.replace(tzinfo=UTC), state.settings.retry_policy)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} had not been requested yet at {at.isoformat()}")
    return doc


async def result(state: GatewayState, tenant: str, job_id: str) -> dict[str, Any]:
    """The generated content; 409 while the job has not completed."""
    job = await own_job(state, tenant, job_id)
    found = await state.store.results.find_one({"_id": job_id}, {"_id": 0, "tenant": 0, "event_id": 0, "created_at": 0})
    if found is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT if job["status"] != "completed" else status.HTTP_404_NOT_FOUND,
            f"the job is {job['status']}; its result exists once it is completed",
        )
    return found


async def cancel(state: GatewayState, tenant: str, job_id: str) -> dict[str, Any]:
    """Cancel a pending or running job: work in progress stops and no later event revives it."""
    job = await own_job(state, tenant, job_id)
    if job["status"] in TERMINAL_STATUSES:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the job is already {job['status']}; only pending or running jobs can be cancelled",
        )
    common: dict[str, Any] = dict(job_id=job_id, tenant=tenant, attempt=job["attempt"], producer="gateway")
    reason = "cancelled through the API"
    await publish(
        state,
        job,
        [
            # The request tells the workers to stop; the fact ends the job in the read model and notifies.
            ev.JobCancelRequested(
                event_id=derived_uuid7(job_id, "cancel_requested"),
                data=ev.JobCancelRequestedData(reason=reason),
                **common,
            ),
            ev.JobCancelled(
                event_id=derived_uuid7(job_id, "cancelled"),
                data=ev.JobCancelledData(reason=reason, **outcome_of(job)),
                **common,
            ),
        ],
    )
    return job


async def retry(state: GatewayState, tenant: str, job_id: str) -> dict[str, Any]:
    """Start a failed job again from the stage that failed, as a new attempt."""
    job = await own_job(state, tenant, job_id)
    if job["status"] != "failed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"the job is {job['status']}; only failed jobs can be retried")
    await publish(state, job, [await retry_from_failure(state, job, "retried through the API")])
    return job


async def retry_from_failure(state: GatewayState, job: dict[str, Any], reason: str) -> ev.JobRetryRequested:
    """The retry request that restarts a failed job at its failed stage, one attempt after its last."""
    stage = (job.get("error") or {}).get("stage") or job["stage"]
    return await state.scheduler.retry_event(
        job, stage, job["attempt"] + 1, None, reason, cause=f"manual:{job['version']}"
    )


async def publish(state: GatewayState, job: dict[str, Any], events: list[ev.Event]) -> None:
    await publish_or_503(state.publisher.publish(events, priority=job.get("priority")))


async def publish_or_503(send: Awaitable[Any]) -> None:
    """Await a write to the log; a broker that is down or slow becomes a 503 the client may retry."""
    try:
        await asyncio.wait_for(send, PUBLISH_TIMEOUT_S)
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the event log is not reachable ({type(exc).__name__}); try again shortly",
        ) from None
