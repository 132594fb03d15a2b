"""`GET /api/status` (the caller's last hour and the system's checks) and `GET /api/debug/{id}` (one job)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .. import status
from ..web.deps import State, Tenant

router = APIRouter(prefix="/api", tags=["status"])


@router.get("/status")
async def get_status(state: State, tenant: Tenant) -> dict[str, Any]:
    """The last hour of the caller's jobs: totals, statuses, completion rate, stuck and failed counts,
    stage timings (average and p95), per-minute throughput, configuration checks and recommendations."""
    return await status.tenant_status(state, tenant)


@router.get("/debug/{job_id}")
async def debug_job(job_id: str, state: State, tenant: Tenant) -> dict[str, Any]:
    """Everything about one of the caller's jobs, for diagnosing it: the document, the audit trail with
    log positions, attempts per stage, errors, result sizes, timings and a short diagnosis."""
    return await status.debug_job(state, tenant, job_id)
