"""The scheduler loop: one gateway instance at a time (a MongoDB lease) drives jobs forward.

Each tick it (1) publishes requests a crash left unpublished, (2) carries
out what the projector decided after a stage failure (retry when due, or
fail the job), (3) re-drives active jobs with no event for the stuck
threshold, and (4) refreshes the gauges. Everything it emits has an id
derived from its cause, so doing the same thing twice (a lost lease, a
crash after publishing) yields duplicates that every consumer drops.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.structs import ConsumerRecord
from pymongo.errors import DuplicateKeyError
from sitewright_contracts import derived_uuid7, encode
from sitewright_contracts import events as ev
from sitewright_contracts.models import ACTIVE_STATUSES, JOB_STATUSES, CrawlContext, ErrorInfo, JobOptions
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.logs import get_logger
from sitewright_runtime.metrics import JOBS_BY_STATUS, JOBS_STUCK, RETRIES

from .config import GatewaySettings
from .projector import event_from_document
from .store import Store

log = get_logger(__name__)
LEASE_ID = "scheduler"
# Do not repeat an action (or re-drive a job) more often than this while its event is in flight.
ACTION_COOLDOWN = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(self, settings: GatewaySettings, store: Store, publisher: Publisher):
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.is_leader = False
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                if await self.store.follow_active_model():
                    log.info("read_model_switched", db=self.store.model.name)  # type: ignore[union-attr]
                self.is_leader = await self.acquire_lease()
                if self.is_leader:
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or broker is down: try again next tick
                log.warning("scheduler_tick_failed", error=repr(exc))
            try:
                await asyncio.wait_for(self._stop.wait(), self.settings.scheduler_interval_s)
            except TimeoutError:
                pass
        if self.is_leader:
            await self.store.leases.delete_one({"_id": LEASE_ID, "owner": self.owner})

    async def acquire_lease(self) -> bool:
        now = utcnow()
        expires = now + timedelta(seconds=self.settings.lease_ttl_s)
        result = await self.store.leases.update_one(
            {"_id": LEASE_ID, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
            {"$set": {"owner": self.owner, "expires_at": expires}},
        )
        if result.matched_count:
            return True
        try:
            await self.store.leases.insert_one({"_id": LEASE_ID, "owner": self.owner, "expires_at": expires})
            return True
        except DuplicateKeyError:
            return False

    async def tick(self) -> None:
        now = utcnow()
        await self.publish_outbox(now)
        await self.run_actions(now)
        await self.redrive_stuck(now)
        await self.update_gauges(now)

    async def publish_outbox(self, now: datetime) -> None:
        """Publish requests whose publish never completed (the gateway crashed or the broker was down)."""
        cutoff = now - timedelta(seconds=self.settings.outbox_grace_s)
        async for doc in self.store.jobs.find({"published": False, "created_at": {"$lt": cutoff}}).limit(500):
            event = ev.JobRequested.model_validate(doc["outbox"])
            await self.publisher.publish([event], priority=doc.get("priority"))
            await self.store.jobs.update_one({"_id": doc["_id"]}, {"$set": {"published": True}, "$unset": {"outbox": ""}})
            log.info("outbox_republished", job_id=doc["_id"])

    async def run_actions(self, now: datetime) -> None:
        """Retry a failed stage when its backoff is over, or fail the job when it may not retry."""
        query = {
            "action.due_at": {"$lte": now},
            "status": {"$in": list(ACTIVE_STATUSES)},
            "$or": [{"action.emitted_at": None}, {"action.emitted_at": {"$lt": now - ACTION_COOLDOWN}}],
        }
        async for doc in self.store.jobs.find(query).limit(500):
            action = doc["action"]
            if action["kind"] == "retry":
                event = await self.retry_event(doc, action["stage"], action["attempt"], action["cause"], "backoff over")
                RETRIES.labels(action["stage"], "stage_failed").inc()
            else:
                error = ErrorInfo.model_validate(doc["error"] or {"code": "unknown", "message": "unknown error"})
                event = ev.JobFailed(
                    event_id=derived_uuid7(action["cause"], "job.failed"), job_id=doc["_id"], tenant=doc["tenant"],
                    attempt=action["attempt"], producer="gateway.scheduler",
                    data=ev.JobFailedData(stage=action["stage"], error=error),
                )
                # The failure's audit-trail copy lands just after the job document; give it a moment.
                if not await self.dead_letter_cause(action["cause"], error) and now - action["due_at"] < ACTION_COOLDOWN:
                    continue
            await self.publisher.publish([event], priority=doc.get("priority"))
            await self.store.jobs.update_one(
                {"_id": doc["_id"], "action.cause": action["cause"]}, {"$set": {"action.emitted_at": now}}
            )

    async def dead_letter_cause(self, cause_id: str, error: ErrorInfo) -> bool:
        """Copy the failure that ended a job (its last message) to the DLQ, where it can be replayed."""
        found = await self.store.events.find_one({"_id": cause_id})
        if found is None:
            return False
        event = event_from_document(found)
        key, value, headers = encode(event)
        record = ConsumerRecord(
            self.settings.topics.events, found["partition"], found["offset"], 0, 0, key, value, None, len(key), len(value), headers
        )
        reason = "attempts_exhausted" if error.retryable else "not_retryable"
        await self.publisher.dead_letter(
            record, group="gateway.scheduler", reason=reason, error=f"{error.code}: {error.message}", attempts=event.attempt
        )
        return True

    async def redrive_stuck(self, now: datetime) -> None:
        """An active job with no event for the stuck threshold gets a new attempt of its stage."""
        cutoff = now - timedelta(seconds=self.settings.stuck_after_s)
        query = {
            "status": {"$in": list(ACTIVE_STATUSES)},
            "updated_at": {"$lt": cutoff},
            "published": {"$ne": False},
            "action": None,
            "$or": [{"redriven_at": None}, {"redriven_at": {"$lt": now - ACTION_COOLDOWN}}],
        }
        async for doc in self.store.jobs.find(query).limit(500):
            stage, attempt = doc["stage"], doc["attempt"]
            cause = f"stuck:{doc['_id']}:{doc['version']}"
            if attempt >= self.settings.retry_max_attempts and doc["status"] != "pending":
                event: ev.Event = ev.JobFailed(
                    event_id=derived_uuid7(doc["_id"], cause), job_id=doc["_id"], tenant=doc["tenant"],
                    attempt=attempt, producer="gateway.scheduler",
                    data=ev.JobFailedData(
                        stage=stage,
                        error=ErrorInfo(code="stuck", message=f"no progress for {self.settings.stuck_after_s:g}s in {attempt} attempts"),
                    ),
                )
            else:
                next_attempt = attempt + 1 if doc["status"] != "pending" else attempt
                event = await self.retry_event(doc, stage, next_attempt, None, "stuck", cause=cause)
                RETRIES.labels(stage, "stuck").inc()
            await self.publisher.publish([event], priority=doc.get("priority"))
            await self.store.jobs.update_one({"_id": doc["_id"]}, {"$set": {"redriven_at": now}})
            log.warning("stuck_job_redriven", job_id=doc["_id"], stage=stage, attempt=attempt, emitted=event.type)

    async def retry_event(
        self, doc: dict[str, Any], stage: str, attempt: int, cause_event: str | None, reason: str, *, cause: str = ""
    ) -> ev.JobRetryRequested:
        crawl = None
        if stage == "generate":
            # The generator needs the crawl; it is on the log, and so in the audit trail.
            found = await self.store.events.find_one(
                {"job_id": doc["_id"], "type": "crawl.succeeded"}, sort=[("occurred_at", -1)]
            )
            if found is None:
                stage = "crawl"  # no crawl to generate from: start over
            else:
                crawl = CrawlContext.model_validate(found["data"]["crawl"])
        return ev.JobRetryRequested(
            event_id=derived_uuid7(cause_event or doc["_id"], "retry", stage, attempt, cause),
            job_id=doc["_id"], tenant=doc["tenant"], attempt=attempt, producer="gateway.scheduler",
            data=ev.JobRetryRequestedData(
                stage=stage, reason=reason, crawl=crawl, url=doc["url"], options=JobOptions.model_validate(doc["options"]),
                tokens_spent=sum((doc.get("tokens") or {}).values()),
            ),
        )

    async def update_gauges(self, now: datetime) -> None:
        counts = dict.fromkeys(JOB_STATUSES, 0)
        async for row in await self.store.jobs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
            counts[row["_id"]] = row["n"]
        for status, n in counts.items():
            JOBS_BY_STATUS.labels(status).set(n)
        cutoff = now - timedelta(seconds=self.settings.stuck_after_s)
        JOBS_STUCK.set(
            await self.store.jobs.count_documents({"status": {"$in": list(ACTIVE_STATUSES)}, "updated_at": {"$lt": cutoff}})
        )
