"""The scheduler loop: one gateway instance at a time (a MongoDB lease) drives jobs forward.

Each tick it reads the jobs whose `due_at` has come (one small partial
index) and, by what each is waiting for, (1) publishes a request a crash
left unpublished, (2) carries out what the projector decided after a stage
failure (retry when due, or fail the job), (3) sends a finished job's outcome
again when no notification of it is on record after a grace period, or (4)
deletes a job one retention period after it finished. Less often (a tenth of
the stuck threshold, at most a minute) it (5) re-drives active jobs with no event for the stuck
threshold, (6) refreshes the gauges and (7) deletes the audit trail of jobs
past retention: these read every active job, which at a large backlog is
too much for every second. Everything it emits has an id
derived from its cause, so doing the same thing twice (a lost lease, a
crash after publishing) yields duplicates that every consumer drops.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from sitewright_contracts import derived_uuid7, encode, uuid7_floor
from sitewright_contracts import events as ev
from sitewright_contracts.models import ACTIVE_STATUSES, CrawlContext, ErrorInfo, JobOptions
from sitewright_contracts.wire import child_traceparent
from sitewright_runtime.kafka import DeadMessage, Publisher
from sitewright_runtime.logs import get_logger, log_context
from sitewright_runtime.metrics import JOBS_BY_STATUS, JOBS_STUCK, RETRIES, SCHEDULER_LEADER

from ..config import GatewaySettings
from ..readmodel import audit
from ..readmodel.rules import due_at, event_from_document, notification_missing, outcome_of, request_of
from ..readmodel.store import EPOCH, Store, active_jobs, by_ids, id_chunks

log = get_logger(__name__)
LEASE_ID = "scheduler"
# Do not repeat an action (or re-drive a job) more often than this while its event is in flight.
ACTION_COOLDOWN = timedelta(seconds=30)
# An event outlives its job's retention by this much, so a long-running job never loses its trail.
EVENTS_GRACE = timedelta(days=1)


def due(now: datetime) -> dict[str, Any]:
    """The query of every tick: jobs whose `due_at` has come, on its partial index (`Store.create_indexes`).
    Only the index's own field: the embedded database's planner scans the whole collection when a query
    names any other; the tick tells what each job waits for from the document."""
    return {"due_at": {"$gte": EPOCH, "$lte": now}}


def ready(doc: dict[str, Any], now: datetime) -> bool:
    """Whether a due action is still to do: the job is active and the action was not emitted in the last cooldown."""
    emitted = doc["action"].get("emitted_at")
    return doc["status"] in ACTIVE_STATUSES and (emitted is None or emitted < now - ACTION_COOLDOWN)


def utcnow() -> datetime:
    return datetime.now(UTC)


_STUCK_FIELDS = {"status": 1, "updated_at": 1, "published": 1, "action": 1, "redriven_at": 1}


class Scheduler:
    def __init__(self, settings: GatewaySettings, store: Store, publisher: Publisher):
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.is_leader = False
        self._stop = asyncio.Event()
        self._next_slow_tick = datetime.min.replace(tzinfo=UTC)

    @property
    def slow_interval(self) -> timedelta:
        s = self.settings
        return timedelta(seconds=max(s.scheduler_interval_s, min(s.stuck_after_s / 10, 60)))

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                if await self.store.follow_active_model():
                    log.info("read_model_switched", db=self.store.model.name)  # type: ignore[union-attr]
                self.is_leader = await self.acquire_lease()
                SCHEDULER_LEADER.set(int(self.is_leader))
                if self.is_leader:
                    await self.tick()
                else:
                    # Only the leader reports the read-model gauges, so max() across gateways is the truth.
                    JOBS_BY_STATUS.clear()
                    JOBS_STUCK.set(0)
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
        await self.run_due(now)
        if now >= self._next_slow_tick:
            self._next_slow_tick = now + self.slow_interval
            await self.redrive_stuck(now)
            await self.expire_events(now)

    async def run_due(self, now: datetime) -> None:
        """Do what each job whose `due_at` has come is waiting for."""
        expired = []
        async for doc in self.store.jobs.find(due(now)).limit(500):
            if doc.get("published") is False:
                await self.publish_request(doc)
            elif doc.get("action"):
                if ready(doc, now):
                    await self.run_action(doc, now)
            elif notification_missing(doc):
                await self.reconcile_notifications(doc, now)
            elif doc.get("finished_at") is not None:
                retained_until = due_at(doc, self.settings.retention)
                if retained_until is not None and retained_until <= now:
                    expired.append(doc["_id"])
                else:  # due early by a stale write: due again at the end of its retention
                    await self.store.jobs.update_one({"_id": doc["_id"]}, {"$set": {"due_at": retained_until}})
        if expired:
            # `due_at` again: a job revived meanwhile (retried after it failed) has none and stays.
            deleted = 0
            for chunk in id_chunks(expired):
                deleted += (
                    await self.store.jobs.delete_many({"_id": {"$in": chunk}, "due_at": {"$lte": now}})
                ).deleted_count
            log.info("jobs_expired", deleted=deleted)

    async def reconcile_notifications(self, doc: dict[str, Any], now: datetime) -> None:
        """A finished job's outcome never showed a notification: send the outcome again, from the audit trail.

        The same event, same id: a notifier that had scheduled its deliveries finds them by their key (job,
        outcome, attempt, target) and sends nothing twice; one that never saw it (the memory-only broker lost
        it, or it was dead-lettered) sends it now. Once per job."""
        outcome = f"job.{doc['status']}"
        trail = await audit.job_events(self.store.events, doc["_id"])
        found = max((e for e in trail if e["type"] == outcome), key=lambda e: e["occurred_at"], default=None)
        if found is not None:
            await self._emit(doc, event_from_document(found), "notifications_reconciled", outcome=outcome)
        else:
            log.warning("notifications_not_reconciled", job_id=doc["_id"], outcome=outcome, reason="no outcome event")
        reconciled = {"notify_reconciled_at": now}
        await self.store.jobs.update_one(
            {"_id": doc["_id"]}, {"$set": reconciled | {"due_at": due_at(doc | reconciled, self.settings.retention)}}
        )

    async def publish_request(self, doc: dict[str, Any]) -> None:
        """Publish a request whose publish never completed (the gateway crashed or the broker was down)."""
        event = ev.JobRequested.model_validate(doc["outbox"])
        await self.publisher.publish([event], traceparent=doc.get("traceparent"), priority=doc.get("priority"))
        await self.store.jobs.update_one(
            {"_id": doc["_id"]}, {"$set": {"published": True, "due_at": None}, "$unset": {"outbox": ""}}
        )
        log.info("outbox_republished", job_id=doc["_id"])

    async def run_action(self, doc: dict[str, Any], now: datetime) -> None:
        """Retry a failed stage when its backoff is over, or fail the job when it may not retry."""
        action = doc["action"]
        event: ev.Event
        if action["kind"] == "retry":
            event = await self.retry_event(doc, action["stage"], action["attempt"], action["cause"], "backoff over")
            RETRIES.labels(action["stage"], "stage_failed").inc()
        else:
            error = ErrorInfo.model_validate(doc["error"] or {"code": "unknown", "message": "unknown error"})
            event = ev.JobFailed(
                event_id=derived_uuid7(action["cause"], "job.failed"),
                job_id=doc["_id"],
                tenant=doc["tenant"],
                attempt=action["attempt"],
                producer="gateway.scheduler",
                data=ev.JobFailedData(stage=action["stage"], error=error, **outcome_of(doc)),
            )
            # The failure's audit-trail copy lands just after the job document; give it a moment.
            if (
                not await self.dead_letter_cause(doc["_id"], action["cause"], error)
                and now - action["due_at"] < ACTION_COOLDOWN
            ):
                return
        await self._emit(doc, event, "action_emitted", kind=action["kind"], stage=action["stage"])
        await self.store.jobs.update_one(
            {"_id": doc["_id"], "action.cause": action["cause"]}, {"$set": {"action.emitted_at": now}}
        )

    async def dead_letter_cause(self, job_id: str, cause_id: str, error: ErrorInfo) -> bool:
        """Copy the failure that ended a job (its last message) to the DLQ, where it can be replayed."""
        found = next((e for e in await audit.job_events(self.store.events, job_id) if e["_id"] == cause_id), None)
        if found is None:
            return False
        event = event_from_document(found)
        key, value, headers = encode(event)
        message = DeadMessage(self.settings.topics.events, found["partition"], found["offset"], key, value, headers)
        reason = "attempts_exhausted" if error.retryable else "not_retryable"
        await self.publisher.dead_letter_message(
            message,
            group="gateway.scheduler",
            reason=reason,
            error=f"{error.code}: {error.message}",
            attempts=event.attempt,
        )
        return True

    async def redrive_stuck(self, now: datetime) -> None:
        """An active job with no event for the stuck threshold gets a new attempt of its stage.

        One pass over the active jobs (a few fields each) also refreshes the gauges.
        """
        cutoff = now - timedelta(seconds=self.settings.stuck_after_s)
        counts = dict.fromkeys(ACTIVE_STATUSES, 0)
        stuck, candidates = 0, []
        async for doc in active_jobs(self.store.jobs, projection=_STUCK_FIELDS):
            counts[doc["status"]] += 1
            if doc["updated_at"] >= cutoff:
                continue
            stuck += 1
            redriven = doc.get("redriven_at")
            # Unpublished requests are the outbox sweep's; jobs with an action are waiting for it.
            if (
                doc.get("published") is not False
                and doc.get("action") is None
                and (redriven is None or redriven < now - ACTION_COOLDOWN)
            ):
                candidates.append(doc["_id"])
        for status, n in counts.items():
            JOBS_BY_STATUS.labels(status).set(n)
        JOBS_STUCK.set(stuck)
        if not candidates:
            return
        async for doc in by_ids(self.store.jobs, candidates[:500]):
            stage, attempt = doc["stage"], doc["attempt"]
            cause = f"stuck:{doc['_id']}:{doc['version']}"
            if attempt >= self.settings.retry_max_attempts and doc["status"] != "pending":
                event: ev.Event = ev.JobFailed(
                    event_id=derived_uuid7(doc["_id"], cause),
                    job_id=doc["_id"],
                    tenant=doc["tenant"],
                    attempt=attempt,
                    producer="gateway.scheduler",
                    data=ev.JobFailedData(
                        stage=stage,
                        error=ErrorInfo(
                            code="stuck",
                            message=f"no progress for {self.settings.stuck_after_s:g}s in {attempt} attempts",
                        ),
                        **outcome_of(doc),
                    ),
                )
            elif doc["status"] == "pending":
                # Never started: its request may have gone with the log (the embedded broker keeps none
                # across a restart). The same request again, same event id: the crawler starts it, and
                # the audit trail (so a rebuild or `history`) begins where the job did.
                event = request_of(doc)
                RETRIES.labels(stage, "stuck").inc()
            else:
                event = await self.retry_event(doc, stage, attempt + 1, None, "stuck", cause=cause)
                RETRIES.labels(stage, "stuck").inc()
            await self._emit(doc, event, "stuck_job_redriven", stage=stage, attempt=attempt)
            await self.store.jobs.update_one({"_id": doc["_id"]}, {"$set": {"redriven_at": now}})

    async def _emit(self, doc: dict[str, Any], event: ev.Event, what: str, **fields: object) -> None:
        """Publish `event` in the job's trace (started by the gateway at the request) and log it so."""
        traceparent = child_traceparent(doc.get("traceparent"))
        await self.publisher.publish([event], traceparent=traceparent, priority=doc.get("priority"))
        with log_context(job_id=doc["_id"], event_id=event.event_id, traceparent=traceparent):
            log.info(what, emitted=event.type, **fields)

    async def retry_event(
        self, doc: dict[str, Any], stage: str, attempt: int, cause_event: str | None, reason: str, *, cause: str = ""
    ) -> ev.JobRetryRequested:
        crawl = None
        if stage == "generate":
            # The generator needs the crawl; it is on the log, and so in the audit trail.
            crawls = [
                e for e in await audit.job_events(self.store.events, doc["_id"]) if e["type"] == "crawl.succeeded"
            ]
            found = max(crawls, key=lambda e: e["occurred_at"], default=None)
            if found is None:
                stage = "crawl"  # no crawl to generate from: start over
            else:
                crawl = CrawlContext.model_validate(found["data"]["crawl"])
        return ev.JobRetryRequested(
            event_id=derived_uuid7(cause_event or doc["_id"], "retry", stage, attempt, cause),
            job_id=doc["_id"],
            tenant=doc["tenant"],
            attempt=attempt,
            producer="gateway.scheduler",
            data=ev.JobRetryRequestedData(
                stage=stage,
                reason=reason,
                crawl=crawl,
                url=doc["url"],
                options=JobOptions.model_validate(doc["options"]),
                tokens_spent=sum((doc.get("tokens") or {}).values()),
                notify=outcome_of(doc)["notify"],
            ),
        )

    async def expire_events(self, now: datetime) -> None:
        """Retention of the audit trail: the events of jobs created before the retention period (and a grace)."""
        before = uuid7_floor(int((now - self.settings.retention - EVENTS_GRACE).timestamp() * 1000))
        deleted = (await self.store.events.delete_many({"job_id": {"$lt": before}})).deleted_count
        if deleted:
            log.info("events_expired", deleted=deleted, jobs_before=before)
