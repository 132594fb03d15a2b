"""Commands on one job: cancel it, or retry it from the stage that failed.

Both publish events whose ids derive from the job's current version, so a
double click (or a client retrying a timed-out request) publishes the same
event twice, which every consumer drops as a duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, HTTPException, status
from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import TERMINAL_STATUSES

from .api import PUBLISH_TIMEOUT_S, own_job
from .deps import State, Tenant
from .schemas import JobAccepted, links
from .state import GatewayState

router = APIRouter(prefix="/api", tags=["jobs"])
CONFLICT = {status.HTTP_409_CONFLICT: {"description": "The job is not in a state that allows this command."}}


@router.post("/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, responses=CONFLICT)
async def cancel_job(job_id: str, state: State, tenant: Tenant) -> JobAccepted:
    """Cancel a pending or running job: work in progress stops and no later event revives it."""
    job = await own_job(state, tenant, job_id)
    if job["status"] in TERMINAL_STATUSES:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"the job is already {job['status']}; only pending or running jobs can be cancelled"
        )
    common = dict(job_id=job_id, tenant=tenant, attempt=job["attempt"], producer="gateway")
    reason = "cancelled through the API"
    await _publish(state, job, [
        # The request tells the workers to stop; the fact ends the job in the read model and notifies.
        ev.JobCancelRequested(event_id=derived_uuid7(job_id, "cancel_requested"), data=ev.JobCancelRequestedData(reason=reason), **common),
        ev.JobCancelled(event_id=derived_uuid7(job_id, "cancelled"), data=ev.JobCancelledData(reason=reason), **common),
    ])
    return JobAccepted(id=job_id, status=job["status"], links=links(job_id))


@router.post("/jobs/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, responses=CONFLICT)
async def retry_job(job_id: str, state: State, tenant: Tenant) -> JobAccepted:
    """Start a failed job again from the stage that failed, as a new attempt."""
    job = await own_job(state, tenant, job_id)
    if job["status"] != "failed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"the job is {job['status']}; only failed jobs can be retried")
    await _publish(state, job, [await retry_from_failure(state, job, "retried through the API")])
    return JobAccepted(id=job_id, status=job["status"], links=links(job_id))


async def retry_from_failure(state: GatewayState, job: dict[str, Any], reason: str) -> ev.JobRetryRequested:
    """The retry request that restarts a failed job at its failed stage, one attempt after its last."""
    stage = (job.get("error") or {}).get("stage") or job["stage"]
    return await state.scheduler.retry_event(
        job, stage, job["attempt"] + 1, None, reason, cause=f"manual:{job['version']}"
    )


async def _publish(state: GatewayState, job: dict[str, Any], events: list[ev.Event]) -> None:
    await publish_or_503(state.publisher.publish(events, priority=job.get("priority")))


async def publish_or_503(send: Awaitable[None]) -> None:
    """Await a write to the log; a broker that is down or slow becomes a 503 the client may retry."""
    try:
        await asyncio.wait_for(send, PUBLISH_TIMEOUT_S)
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"the event log is not reachable ({type(exc).__name__}); try again shortly"
        ) from None
