"""The dead-letter topic as people see it: stored, listed and replayed.

The gateway reads `jobs.dlq` with its own group into the `dlq` collection.
One message dead-lettered by several consumer groups (a poison message every
group fails to decode) is one entry, listing the groups. Replaying an entry
restarts its job: a failed job gets a new attempt of its failed stage; a job
still active gets the original message again on its source topic (consumers
drop what they have already done). A job's outcome (the notifier gave up on it)
is sent again whatever the job's status, so that its notifications go out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiokafka.structs import ConsumerRecord
from fastapi import HTTPException, status
from pymongo import UpdateOne

from sitewright_contracts import UndecodableEvent, decode, header
from sitewright_contracts import topics as t
from sitewright_contracts.events import utcnow

from .jobs import publish_or_503, retry_from_failure
from .readmodel.store import Store, tenant_job
from .state import GatewayState
from .web.auth import Principal

MAX_STORED_BODY = 256 * 1024


def entry_id(record: ConsumerRecord) -> str:
    """One id per dead message, whichever group dead-lettered it."""
    source = "|".join(
        header(record.headers, h) or "" for h in (t.H_DLQ_SOURCE_TOPIC, t.H_DLQ_SOURCE_PARTITION, t.H_DLQ_SOURCE_OFFSET)
    )
    return hashlib.sha256(source.encode() + b"|" + (record.value or b"")).hexdigest()[:24]


def entry_document(record: ConsumerRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "reason": header(record.headers, t.H_DLQ_REASON),
        "error": header(record.headers, t.H_DLQ_ERROR),
        "attempts": int(header(record.headers, t.H_DLQ_ATTEMPTS) or 1),
        "source": {
            "topic": header(record.headers, t.H_DLQ_SOURCE_TOPIC),
            "partition": int(header(record.headers, t.H_DLQ_SOURCE_PARTITION) or -1),
            "offset": int(header(record.headers, t.H_DLQ_SOURCE_OFFSET) or -1),
        },
        "event_type": header(record.headers, t.H_EVENT_TYPE),
        "event_id": header(record.headers, t.H_EVENT_ID),
        "headers": [[k, (v or b"").decode(errors="replace")] for k, v in record.headers or ()],
        "key": (record.key or b"").decode(errors="replace"),
        "body": (record.value or b"")[:MAX_STORED_BODY].decode(errors="replace"),
        "dlq_position": {"partition": record.partition, "offset": record.offset},
        "job_id": None,
        "tenant": None,
    }
    try:
        event = decode(record.value)
        doc.update(job_id=event.job_id, tenant=event.tenant, event_type=event.type, event_id=event.event_id)
    except UndecodableEvent:
        pass
    return doc


class DeadLetters:
    """The DLQ group's batch handler: upsert one entry per dead message."""

    def __init__(self, store: Store):
        self.store = store

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        writes = []
        for record in records:
            doc = entry_document(record)
            group = header(record.headers, t.H_DLQ_GROUP)
            writes.append(
                UpdateOne(
                    {"_id": entry_id(record)},
                    {"$setOnInsert": doc | {"created_at": utcnow(), "replays": []}, "$addToSet": {"groups": group}},
                    upsert=True,
                )
            )
        await self.store.dlq.bulk_write(writes, ordered=False)


def _scope(caller: Principal) -> dict[str, Any]:
    # An admin sees every entry, including poison messages that name no tenant.
    return {} if caller.admin else {"tenant": caller.tenant}


async def page(
    state: GatewayState, caller: Principal, job_id: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Entries the caller may see (an admin sees all), newest first, and the cursor of the next page."""
    query = _scope(caller)
    if job_id:
        query["job_id"] = job_id
    if cursor:
        try:
            query["created_at"] = {"$lt": datetime.fromisoformat(cursor)}
        except ValueError:
            raise HTTPException(422, "cursor must be the `next_cursor` of a previous page") from None
    docs = [d async for d in state.store.dlq.find(query).sort("created_at", -1).limit(limit + 1)]
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, docs[-1]["created_at"].isoformat() if more else None


# A job's outcome, dead-lettered by whoever could not handle it (the notifier during a database outage): a
# replay sends the outcome again, whatever the job's status, and its consumers drop what they already did
# (the notifier's deliveries are keyed by job, outcome, attempt and target; the projector knows the event).
OUTCOMES = frozenset({"job.completed", "job.failed", "job.cancelled"})


async def replay(state: GatewayState, caller: Principal, entry_id: str) -> dict[str, Any]:
    """Start the entry's job again: a new attempt of the failed stage, or the original message once more.

    An outcome is always sent once more: replaying a notification's dead letter notifies, it does not
    restart a finished job."""
    doc = await state.store.dlq.find_one({"_id": entry_id} | _scope(caller))
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter with id {entry_id!r}")
    if doc.get("job_id") is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"this message cannot be replayed: it could not be decoded ({doc.get('reason')}: {doc.get('error')}); "
            "fix the producer and send a corrected message instead",
        )
    job = await tenant_job(state.store.jobs, doc["job_id"], doc["tenant"])
    if job is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"job {doc['job_id']} no longer exists (expired or never projected)"
        )
    outcome = doc.get("event_type") in OUTCOMES
    if job["status"] in ("completed", "cancelled") and not outcome:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"job {job['_id']} is {job['status']}; there is nothing to replay"
        )
    if job["status"] == "failed" and not outcome:
        event = await retry_from_failure(state, job, f"replayed from the dead-letter queue ({entry_id})")
        await publish_or_503(state.publisher.publish([event], priority=job.get("priority")))
        action = {"kind": "retry", "stage": event.data.stage, "attempt": event.attempt, "event_id": event.event_id}
    else:
        if not doc.get("body") or doc.get("headers") is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"dead letter {entry_id} does not hold the original message, so it cannot be sent again; "
                f"retry the job instead: POST /api/jobs/{job['_id']}/retry once it has failed",
            )
        headers = [(k, v.encode()) for k, v in doc["headers"] if not k.startswith("dlq-")]
        topic = doc["source"]["topic"] or state.settings.topics.events
        await publish_or_503(
            state.publisher.send_raw(topic, key=doc["key"].encode(), value=doc["body"].encode(), headers=headers)
        )
        action = {"kind": "redeliver", "topic": topic, "event_id": doc.get("event_id")}
    await state.store.dlq.update_one({"_id": entry_id}, {"$push": {"replays": action | {"at": utcnow()}}})
    return {"id": entry_id, "job_id": job["_id"], "replayed": action}
