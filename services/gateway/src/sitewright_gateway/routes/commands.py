"""Commands on one job: cancel it, or retry it from the stage that failed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from .. import jobs
from ..web.deps import State, Tenant
from ..web.schemas import JobAccepted, links

router = APIRouter(prefix="/api", tags=["jobs"])
CONFLICT: dict[int | str, dict[str, Any]] = {
    status.HTTP_409_CONFLICT: {"description": "The job is not in a state that allows this command."}
}


@router.post(
    "/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, responses=CONFLICT
)
async def cancel_job(job_id: str, state: State, tenant: Tenant) -> JobAccepted:
    """Cancel a pending or running job: work in progress stops and no later event revives it."""
    job = await jobs.cancel(state, tenant, job_id)
    return JobAccepted(id=job_id, status=job["status"], links=links(job_id))


@router.post(
    "/jobs/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, responses=CONFLICT
)
async def retry_job(job_id: str, state: State, tenant: Tenant) -> JobAccepted:
    """Start a failed job again from the stage that failed, as a new attempt."""
    job = await jobs.retry(state, tenant, job_id)
    return JobAccepted(id=job_id, status=job["status"], links=links(job_id))
