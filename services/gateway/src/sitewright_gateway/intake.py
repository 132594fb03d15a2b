"""The write path of a new job: check it, claim its idempotency key, publish its request, record it.

Published first, the job is on the log before anything else: its document then goes in marked
published and at the place the broker gave the request, with the request as the first page of its
audit trail, exactly what the projector would write when it reads the request, so the projector has
nothing to write then (`bench/README.md`, "Requests recorded at the gateway"). If the publish fails,
the document goes in unpublished with its request (the outbox) and the scheduler publishes it later.
Concurrent requests' documents go in together (`GroupInsert`). Either way the document is written
before the answer, so a GET right after it finds the job on any gateway instance, and an accepted job
is never lost.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import HTTPException, status
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from sitewright_contracts import events as ev
from sitewright_contracts import uuid7
from sitewright_contracts.wire import new_traceparent
from sitewright_runtime.logs import get_logger, log_context
from sitewright_runtime.metrics import JOBS_CREATED
from sitewright_runtime.netguard import BlockedAddress

from .readmodel import audit
from .readmodel.rules import new_job
from .state import GatewayState
from .web.errors import summary
from .web.ratelimit import KeyedLimiter
from .web.schemas import JobCreate

log = get_logger(__name__)
PUBLISH_TIMEOUT_S = 5.0
# A claimed Idempotency-Key whose job is still not recorded this long after: its request died mid-way.
# Far longer than a request takes (a publish times out after PUBLISH_TIMEOUT_S), so no live one is overtaken.
STALE_CLAIM = timedelta(minutes=2)


@dataclass(frozen=True)
class Accepted:
    job_id: str
    status: str
    replayed: bool  # an earlier request with the same Idempotency-Key created the job


async def accept(state: GatewayState, tenant: str, body: JobCreate, idempotency_key: str | None) -> Accepted:
    """Accept a job: publish its request on the log, then write it to the read model."""
    _check_addresses(state, body)
    _, refusal = await state.admission.admit(tenant)
    if refusal is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, refusal.message, headers={"Retry-After": str(refusal.retry_after_s)}
        )
    event = _request(tenant, body)
    if idempotency_key:
        existing = await _claim_idempotency_key(state, tenant, idempotency_key, body, event.job_id)
        if existing is not None:
            return Accepted(existing["_id"], existing["status"], replayed=True)
    await _publish_and_record(state, event)
    return Accepted(event.job_id, "pending", replayed=False)


@dataclass(frozen=True)
class ItemOutcome:
    """One item of a bulk submission: 202 accepted, 422 invalid, 429 not admitted now."""

    index: int
    status: int
    job_id: str | None = None
    error: str | None = None
    retry_after_s: int | None = None


async def accept_many(
    state: GatewayState, tenant: str, items: list[Any], limiter: KeyedLimiter, key_id: str
) -> list[ItemOutcome]:
    """Accept each valid item, in order, as far as the key's rate limit and admission control allow.

    Each item is checked on its own, so one bad item refuses only itself. The accepted ones are published and
    recorded together: their requests go to the broker in one batch and their documents in group inserts."""
    outcomes: dict[int, ItemOutcome] = {}
    valid: list[tuple[int, JobCreate]] = []
    for index, item in enumerate(items):
        try:
            body = JobCreate.model_validate(item)
            _check_addresses(state, body)
        except ValidationError as exc:
            outcomes[index] = ItemOutcome(index, 422, error=summary(exc.errors(), root="job"))
        except HTTPException as exc:
            outcomes[index] = ItemOutcome(index, 422, error=str(exc.detail))
        else:
            valid.append((index, body))
    granted, limited = limiter.grant(key_id, len(valid))
    admitted, refusal = await state.admission.admit(tenant, granted)
    accepted = []
    for n, (index, body) in enumerate(valid):
        if n < admitted:
            accepted.append((index, _request(tenant, body)))
            continue
        if n < granted and refusal is not None:
            message, retry = refusal.message, refusal.retry_after_s
        else:
            assert limited is not None
            message, retry = limited.message, int(limited.retry_after_header)
        outcomes[index] = ItemOutcome(index, 429, error=message, retry_after_s=retry)
    results = await asyncio.gather(
        *(_publish_and_record(state, event) for _, event in accepted), return_exceptions=True
    )
    for (index, event), result in zip(accepted, results, strict=True):
        if isinstance(result, BaseException):  # neither on the log nor in the read model: not accepted
            log.warning("bulk_item_not_accepted", job_id=event.job_id, error=repr(result))
            outcomes[index] = ItemOutcome(index, 503, error="the job could not be recorded; submit it again shortly")
        else:
            outcomes[index] = ItemOutcome(index, 202, job_id=event.job_id)
    return [outcomes[i] for i in range(len(items))]


def _check_addresses(state: GatewayState, body: JobCreate) -> None:
    """422 when the site or a webhook target points where Sitewright may not go (SSRF)."""
    try:
        state.guard.check_literal(body.url)
        for target in body.notify:
            if target.channel == "webhook":
                state.guard.check_literal(target.target)
    except BlockedAddress as exc:
        raise HTTPException(422, f"{exc.code}: {exc.message}") from None


def _request(tenant: str, body: JobCreate) -> ev.JobRequested:
    return ev.JobRequested(
        tenant=tenant,
        producer="gateway",
        job_id=uuid7(),
        data=ev.JobRequestedData(url=body.url, options=body.options, notify=body.notify, priority=body.priority),
    )


async def _publish_and_record(state: GatewayState, event: ev.JobRequested) -> None:
    # The job's trace starts here; every event of the job carries it (the scheduler's too, from the document).
    traceparent = new_traceparent()
    with log_context(job_id=event.job_id, event_id=event.event_id, traceparent=traceparent):
        landed: tuple[int, int] | None = None
        try:
            [landed] = await asyncio.wait_for(
                state.publisher.publish([event], traceparent=traceparent), PUBLISH_TIMEOUT_S
            )
        except Exception as exc:  # accepted all the same: the scheduler's outbox sweep publishes it
            log.warning("publish_deferred", error=repr(exc))
        await _record_job(state, event, traceparent, landed)
        JOBS_CREATED.inc()
        log.info("job_accepted", url=event.data.url)


async def _record_job(
    state: GatewayState, event: ev.JobRequested, traceparent: str, landed: tuple[int, int] | None
) -> None:
    """Write the new job's document, and first its request's page of the audit trail if it is on the log (at `landed`).

    The document carries the request's log position only once that page is written: the projector, reading the
    request, skips it when the document is already at its position, so a position written before its page (or
    taken back after a failed page) could leave the trail without the request."""
    doc: dict[str, Any] = {**new_job(event), "published": landed is not None, "traceparent": traceparent}
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


async def _record_request(
    state: GatewayState, event: ev.JobRequested, landed: tuple[int, int], doc: dict[str, Any]
) -> bool:
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
    if existing is not None:
        return existing
    if ev.utcnow() - claimed["created_at"] > STALE_CLAIM:
        # The request that claimed the key died before its job was recorded: this one takes the key over.
        taken = await state.store.idempotency.update_one(
            {"_id": f"{tenant}:{key}", "job_id": claimed["job_id"]},
            {"$set": {"job_id": job_id, "created_at": ev.utcnow()}},
        )
        if taken.modified_count == 1:
            return None
    raise HTTPException(
        status.HTTP_409_CONFLICT, "a request with this Idempotency-Key is still being accepted; retry shortly"
    )
