"""REST routes. They translate HTTP into calls on the read model and the log, nothing more."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from pymongo.errors import DuplicateKeyError
from sitewright_contracts import events as ev
from sitewright_contracts import uuid7
from sitewright_contracts.models import JOB_STATUSES, JobStatus
from sitewright_contracts.wire import new_traceparent
from sitewright_runtime.logs import get_logger, log_context
from sitewright_runtime.metrics import JOBS_CREATED
from sitewright_runtime.netguard import BlockedAddress

from . import audit
from .projector import new_job, state_as_of
from .deps import State, Tenant
from .ratelimit import RATE_LIMITED_RESPONSE, JobCreationLimit
from .schemas import EventView, JobAccepted, JobCreate, JobPage, JobView, links
from .state import GatewayState
from .store import tenant_job, tenant_jobs

log = get_logger(__name__)
router = APIRouter(prefix="/api")
PUBLISH_TIMEOUT_S = 5.0


async def own_job(state: GatewayState, tenant: str, job_id: str) -> dict[str, Any]:
    """The caller's job, or 404 (another tenant's job too)."""
    doc = await tenant_job(state.store.jobs, job_id, tenant)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id!r}")
    return doc


@router.post(
    "/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted,
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
    """Accept a job: publish its request on the log, then write it to the read model.

    Published first, the job is on the log before anything else: the document then goes in
    marked published and at the place the broker gave the request, with the request as the first
    page of its audit trail, exactly what the projector would write when it reads the request, so
    the projector has nothing to write then (that update of the job was about a fifth of the projector's
    job updates: `bench/README.md`, "Requests recorded at the gateway"). If the publish
    fails, the document goes in unpublished with its request (the outbox) and the scheduler publishes
    it later. Concurrent requests' documents go in together (`GroupInsert`). Either way the document
    is written before the answer, so a GET right after it finds the job on any gateway instance, and
    an accepted job is never lost.
    """
    try:
        state.guard.check_literal(body.url)
        for target in body.notify:
            if target.channel == "webhook":
                state.guard.check_literal(target.target)
    except BlockedAddress as exc:
        raise HTTPException(422, f"{exc.code}: {exc.message}") from None

    event = ev.JobRequested(
        tenant=tenant,
        producer="gateway",
        job_id=uuid7(),
        data=ev.JobRequestedData(url=body.url, options=body.options, notify=body.notify, priority=body.priority),
    )
    if idempotency_key:
        existing = await _claim_idempotency_key(state, tenant, idempotency_key, body, event.job_id)
        if existing is not None:
            response.status_code = status.HTTP_200_OK
            return JobAccepted(id=existing["_id"], status=existing["status"], links=links(existing["_id"]))

    # The job's trace starts here; every event of the job carries it (the scheduler's too, from the document).
    traceparent = new_traceparent()
    with log_context(job_id=event.job_id, event_id=event.event_id, traceparent=traceparent):
        landed: tuple[int, int] | None = None
        try:
            [landed] = await asyncio.wait_for(state.publisher.publish([event], traceparent=traceparent), PUBLISH_TIMEOUT_S)
        except Exception as exc:  # accepted all the same: the scheduler's outbox sweep publishes it
            log.warning("publish_deferred", error=repr(exc))
        await _record_job(state, event, traceparent, landed)
        JOBS_CREATED.inc()
        log.info("job_accepted", url=body.url)
    response.headers["Location"] = links(event.job_id).self
    return JobAccepted(id=event.job_id, status="pending", links=links(event.job_id))


async def _record_job(state: GatewayState, event: ev.JobRequested, traceparent: str, landed: tuple[int, int] | None) -> None:
    """Write the new job's document, and first its request's page of the audit trail if it is on the log (at `landed`).

    The document carries the request's log position only once that page is written: the projector, reading the
    request, skips it when the document is already at its position, so a position written before its page (or
    taken back after a failed page) could leave the trail without the request."""
    doc = new_job(event) | {"published": landed is not None, "traceparent": traceparent}
    if landed is None:
        doc["outbox"] = event.model_dump(mode="json")
        doc["due_at"] = doc["created_at"] + timedelta(seconds=state.settings.outbox_grace_s)
    elif await _record_request(state, event, landed, doc):
        doc["position"] = {"partition": landed[0], "offset": landed[1]}
    try:
        await state.job_inserts.insert(doc)
    except DuplicateKeyError:
        # The projector read the request off the log and made the document first: only the trace is ours to add.
        await state.store.jobs.update_one({"_id": event.job_id}, {"$set": {"traceparent": traceparent}})
    except Exception:
        if landed is None:
            raise  # neither on the log nor in the read model: not accepted
        # On the log, so accepted: the projector writes the document when the database is back.
        log.warning("job_document_deferred", exc_info=True)


async def _record_request(state: GatewayState, event: ev.JobRequested, landed: tuple[int, int], doc: dict[str, Any]) -> bool:
    """Write the request's page of the audit trail; False if it could not be (the projector records it then)."""
    try:
        await state.page_inserts.insert(audit.page(event.job_id, event.tenant, [audit.entry(event, landed, doc)]))
    except DuplicateKeyError:
        pass  # the projector recorded it first
    except Exception:
        log.warning("request_page_deferred", exc_info=True)
        return False
    return True


async def _claim_idempotency_key(
    state: GatewayState, tenant: str, key: str, body: JobCreate, job_id: str
) -> dict[str, Any] | None:
    """Claim `key` for `job_id`; return the earlier job if the key was already used for this request."""
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    try:
        await state.store.idempotency.insert_one(
            {"_id": f"{tenant}:{key}", "job_id": job_id, "fingerprint": fingerprint, "created_at": ev.utcnow()}
        )
        return None
    except DuplicateKeyError:
        claimed = await state.store.idempotency.find_one({"_id": f"{tenant}:{key}"})
    if claimed is None or claimed["fingerprint"] != fingerprint:
        raise HTTPException(
            422,
            "this Idempotency-Key was already used with a different request body; use a new key for a new job",
        )
    existing = await state.store.jobs.find_one({"_id": claimed["job_id"]})
    if existing is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "a request with this Idempotency-Key is still being accepted; retry shortly")
    return existing


@router.get("/jobs", response_model=JobPage)
async def list_jobs(
    state: State,
    tenant: Tenant,
    status_: Annotated[JobStatus | None, Query(alias="status", description=f"One of {', '.join(JOB_STATUSES)}.")] = None,
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
    return JobView.from_doc(await own_job(state, tenant, job_id))


@router.get("/jobs/{job_id}/events", response_model=list[EventView])
async def get_job_events(job_id: str, state: State, tenant: Tenant) -> list[EventView]:
    """The job's audit trail, in the order the events happened."""
    await own_job(state, tenant, job_id)
    events = sorted(await audit.job_events(state.store.events, job_id), key=lambda d: (d["occurred_at"], d["_id"]))
    return [EventView(event_id=d["_id"], **{k: v for k, v in d.items() if k != "_id"}) for d in events[:1000]]


@router.get("/jobs/{job_id}/history", response_model=JobView)
async def get_job_as_of(
    job_id: str,
    state: State,
    tenant: Tenant,
    at: Annotated[datetime, Query(description="RFC 3339 time, e.g. 2026-11-23T10:00:00Z.")],
) -> JobView:
    """Time travel: the job as it was at `at`, rebuilt from its events."""
    await own_job(state, tenant, job_id)
    events = await audit.job_events(state.store.events, job_id)
    doc = state_as_of(events, at if at.tzinfo else at.replace(tzinfo=UTC), state.settings.retry_policy)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} had not been requested yet at {at.isoformat()}")
    return JobView.from_doc(doc)


@router.get("/jobs/{job_id}/result", responses={409: {"description": "The job has not completed (yet)."}})
async def get_job_result(job_id: str, state: State, tenant: Tenant) -> dict[str, Any]:
    """The generated content: meta tags, content sections, FAQ and JSON-LD."""
    job = await own_job(state, tenant, job_id)
    result = await state.store.results.find_one({"_id": job_id}, {"_id": 0, "tenant": 0, "event_id": 0})
    if result is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT if job["status"] != "completed" else status.HTTP_404_NOT_FOUND,
            f"the job is {job['status']}; its result exists once it is completed",
        )
    result.pop("created_at", None)
    return result
