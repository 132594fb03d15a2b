"""Job routes: submit, list, read one, its events, its past states and its result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from sitewright_contracts.models import JOB_STATUSES, JobStatus

from .. import intake, jobs
from ..readmodel.store import tenant_jobs
from ..web.deps import Caller, State, Tenant
from ..web.ratelimit import RATE_LIMITED_RESPONSE, JobCreationLimit, job_creation_limiter
from ..web.schemas import (
    MAX_BULK_BYTES,
    BulkAccepted,
    BulkCreate,
    BulkItem,
    EventView,
    JobAccepted,
    JobCreate,
    JobPage,
    JobView,
    links,
)

router = APIRouter(prefix="/api")


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={
        200: {"model": JobAccepted, "description": "The job an earlier request with this Idempotency-Key created."},
        409: {"description": "A request with this Idempotency-Key is still being accepted."},
        **RATE_LIMITED_RESPONSE,
    },
)
async def create_job(
    body: JobCreate,
    state: State,
    tenant: Tenant,
    response: Response,
    _: JobCreationLimit,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobAccepted:
    """Accept a job: its request goes on the log and its document into the read model before the answer."""
    accepted = await intake.accept(state, tenant, body, idempotency_key)
    if accepted.replayed:
        response.status_code = status.HTTP_200_OK
    else:
        response.headers["Location"] = links(accepted.job_id).self
    return JobAccepted(id=accepted.job_id, status=accepted.status, links=links(accepted.job_id))


BULK_PATH = "/api/jobs/bulk"


@router.post(
    "/jobs/bulk",
    response_model=BulkAccepted,
    responses={413: {"description": f"The body is over {MAX_BULK_BYTES} bytes."}},
)
async def create_jobs(body: BulkCreate, request: Request, state: State, caller: Caller) -> BulkAccepted:
    """Submit up to 1,000 jobs in one request, each accepted or refused on its own.

    Each item is the body of `POST /api/jobs`. An item answers 202 with its job's id, 422 when it is
    invalid, or 429 when the key's rate limit or admission control refuses it now (with `retry_after_s`);
    the answer is 200 whatever the items' outcomes, with the items in the order sent."""
    outcomes = await intake.accept_many(state, caller.tenant, body.jobs, job_creation_limiter(request), caller.key_id)
    items = [
        BulkItem(
            index=o.index,
            status=o.status,
            id=o.job_id,
            links=links(o.job_id) if o.job_id else None,
            error=o.error,
            retry_after_s=o.retry_after_s,
        )
        for o in outcomes
    ]
    accepted = sum(1 for o in outcomes if o.status == 202)
    return BulkAccepted(accepted=accepted, refused=len(outcomes) - accepted, items=items)


@router.get("/jobs", response_model=JobPage)
async def list_jobs(
    state: State,
    tenant: Tenant,
    status_: Annotated[
        JobStatus | None, Query(alias="status", description=f"One of {', '.join(JOB_STATUSES)}.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page.")] = None,
) -> JobPage:
    """The caller's jobs, newest first."""
    ids = {"$lt": cursor} if cursor else {}
    docs = await tenant_jobs(state.store.jobs, tenant, ids, limit + 1, statuses=[status_] if status_ else JOB_STATUSES)
    more = len(docs) > limit
    docs = docs[:limit]
    return JobPage(items=[JobView.from_doc(d) for d in docs], next_cursor=docs[-1]["_id"] if more else None)


@router.get("/jobs/{job_id}", response_model=JobView)
async def get_job(job_id: str, state: State, tenant: Tenant) -> JobView:
    return JobView.from_doc(await jobs.own_job(state, tenant, job_id))


@router.get("/jobs/{job_id}/events", response_model=list[EventView])
async def get_job_events(job_id: str, state: State, tenant: Tenant) -> list[EventView]:
    """The job's audit trail, in the order the events happened."""
    trail = await jobs.events(state, tenant, job_id)
    return [EventView(event_id=d["_id"], **{k: v for k, v in d.items() if k != "_id"}) for d in trail]


@router.get("/jobs/{job_id}/history", response_model=JobView)
async def get_job_as_of(
    job_id: str,
    state: State,
    tenant: Tenant,
    at: Annotated[datetime, Query(description="RFC 3339 time, e.g. 2026-11-23T10:00:00Z.")],
) -> JobView:
    """Time travel: the job as it was at `at`, rebuilt from its events."""
    return JobView.from_doc(await jobs.as_of(state, tenant, job_id, at))


@router.get("/jobs/{job_id}/result", responses={409: {"description": "The job has not completed (yet)."}})
async def get_job_result(job_id: str, state: State, tenant: Tenant) -> dict[str, Any]:
    """The generated content: meta tags, content sections, FAQ and JSON-LD."""
    return await jobs.result(state, tenant, job_id)
