"""The durable delivery schedule: one document per (outcome event, target) in `deliveries`.

Retries span hours, so they live in MongoDB, not in memory: any notifier
instance picks up what is due, a restart loses nothing, and an instance that
dies mid-try loses its claim when the lease runs out. Every write is an
`update_one` filtered on `_id` and the document's `version` (a compare and
set), so of several instances racing for one delivery exactly one wins.

A document moves `pending` -> `sending` (claimed) -> `sent` | `failed`, or
back to `pending` with a later `next_attempt_at`. The event that reports a
try is written into the document with its result (`outbox`) and published
after, so a crash between the two loses no event: the sweep publishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.logs import get_logger
from sitewright_runtime.metrics import NOTIFICATIONS

from .channels import Channel, Notice, SendResult
from .retry import RetrySchedule

log = get_logger(__name__)
PRODUCER = "notifier"
# An outbox older than this was left by a crash (the writer publishes within milliseconds).
OUTBOX_GRACE = timedelta(seconds=10)


def utcnow() -> datetime:
    return datetime.now(UTC)


class DeliveryStore:
    def __init__(self, collection: AsyncCollection):
        self.collection = collection

    async def create_indexes(self, keep_s: float) -> None:
        await self.collection.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
        # A finished delivery is the record that stops a replay from sending again, so it is kept as long
        # as the job it belongs to (a replayed outcome of a job already removed finds no targets).
        try:
            await self.collection.create_index("finished_at", expireAfterSeconds=int(keep_s), name="finished_ttl")
        except OperationFailure as exc:  # kept for another period before: the existing index stays
            log.warning("deliveries_ttl_unchanged", error=str(exc))
        await self.collection.create_index([("has_outbox", ASCENDING), ("updated_at", ASCENDING)])
        await self.collection.create_index([("job_id", ASCENDING)])

    async def schedule(self, doc: dict[str, Any]) -> bool:
        """Insert a new delivery, due now; False when it exists (a replayed or redelivered outcome)."""
        now = utcnow()
        try:
            await self.collection.insert_one(
                doc
                | {
                    "state": "pending",
                    "attempt": 0,
                    "version": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "outbox": [],
                    "has_outbox": False,
                    "last": None,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def due(self, limit: int) -> list[dict[str, Any]]:
        """Pending deliveries whose time has come, and claims whose lease ran out."""
        # One query per state: the embedded database uses the (state, next_attempt_at) index for an
        # equality and a range, but scans the whole collection for `{"state": {"$in": [...]}, ...}`.
        now = utcnow()
        found = []
        for state in ("pending", "sending"):
            query = {"state": state, "next_attempt_at": {"$lte": now}}
            found += [d async for d in self.collection.find(query).sort("next_attempt_at", ASCENDING).limit(limit)]
        return sorted(found, key=lambda d: d["next_attempt_at"])[:limit]

    async def claim(self, doc: dict[str, Any], lease_s: float) -> dict[str, Any] | None:
        """Take the delivery for one try; None when another instance took it first."""
        now = utcnow()
        change = {
            "state": "sending",
            "attempt": doc["attempt"] + 1,
            "next_attempt_at": now + timedelta(seconds=lease_s),
            "updated_at": now,
        }
        result = await self.collection.update_one(
            {"_id": doc["_id"], "version": doc["version"]}, {"$set": change, "$inc": {"version": 1}}
        )
        return doc | change | {"version": doc["version"] + 1} if result.modified_count == 1 else None

    async def record(self, doc: dict[str, Any], change: dict[str, Any], event: dict[str, Any]) -> bool:
        """Store a try's result with its event; False when the claim was lost (the lease ran out)."""
        result = await self.collection.update_one(
            {"_id": doc["_id"], "version": doc["version"]},
            {
                "$set": change | {"updated_at": utcnow(), "has_outbox": True},
                "$push": {"outbox": event},
                "$inc": {"version": 1},
            },
        )
        return result.modified_count == 1

    async def clear_outbox(self, _id: str, version: int) -> None:
        # Filtered on the version: a newer try's event pushed meanwhile stays for the sweep.
        await self.collection.update_one(
            {"_id": _id, "version": version}, {"$set": {"outbox": [], "has_outbox": False}}
        )

    async def stale_outboxes(self, limit: int = 100) -> list[dict[str, Any]]:
        query = {"has_outbox": True, "updated_at": {"$lte": utcnow() - OUTBOX_GRACE}}
        return [d async for d in self.collection.find(query, {"outbox": 1, "version": 1}).limit(limit)]


class DeliveryLoop:
    """Finds due deliveries, claims each, sends it through its channel and records how it went."""

    def __init__(
        self,
        store: DeliveryStore,
        channels: Mapping[str, Channel],
        publisher: Publisher,
        schedule: RetrySchedule,
        *,
        poll_s: float,
        lease_s: float,
        concurrency: int,
    ):
        self.store = store
        self.channels = dict(channels)
        self.publisher = publisher
        self.schedule = schedule
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.concurrency = concurrency
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (a new outcome was scheduled)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="notifier-deliveries")

    async def stop(self, drain_timeout_s: float = 10) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._in_flight:
            # Unfinished tries keep their claim and are taken over when the lease runs out.
            await asyncio.wait(list(self._in_flight.values()), timeout=drain_timeout_s)

    async def run(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self._start_due()
                if loop.time() - last_sweep >= OUTBOX_GRACE.total_seconds() / 2:
                    await self._sweep_outboxes()
                    last_sweep = loop.time()
            except Exception as exc:  # the database is down: keep trying, nothing is lost
                log.error("delivery_poll_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _start_due(self) -> None:
        room = self.concurrency - len(self._in_flight)
        if room <= 0:
            return
        for doc in await self.store.due(room + len(self._in_flight)):
            if doc["_id"] in self._in_flight or len(self._in_flight) >= self.concurrency:
                continue
            task = asyncio.create_task(self._try(doc))
            self._in_flight[doc["_id"]] = task
            key: str = doc["_id"]

            def forget(_: asyncio.Task[None], key: str = key) -> None:
                self._done(key)

            task.add_done_callback(forget)

    def _done(self, key: str) -> None:
        self._in_flight.pop(key, None)
        self._wake.set()  # a slot is free

    async def _try(self, doc: dict[str, Any]) -> None:
        try:
            claimed = await self.store.claim(doc, self.lease_s)
            if claimed is None:
                return  # another instance has it
            attempt = await self._send(claimed)
            change, event = self._outcome(claimed, attempt)
            if not await self.store.record(claimed, change, event.model_dump(mode="json")):
                log.warning("delivery_claim_lost", delivery=claimed["_id"], attempt=claimed["attempt"])
                return
            NOTIFICATIONS.labels(claimed["channel"], attempt.verdict).inc()
            log.info(
                "notification_attempt",
                job_id=claimed["job_id"],
                delivery=claimed["_id"],
                channel=claimed["channel"],
                attempt=claimed["attempt"],
                verdict=attempt.verdict,
                state=change["state"],
                status_code=attempt.status_code,
                error=attempt.error,
                detail=attempt.detail,
            )
            await self.publisher.publish([event], traceparent=claimed.get("traceparent"))
            await self.store.clear_outbox(claimed["_id"], claimed["version"] + 1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the claim's lease runs out and the try is made again
            log.error("delivery_failed", delivery=doc["_id"], error=repr(exc), exc_info=True)

    async def _send(self, doc: dict[str, Any]) -> SendResult:
        channel = self.channels.get(doc["channel"])
        if channel is None:
            return SendResult("failed", error=f"no {doc['channel']!r} channel on this notifier")
        notice = Notice(
            key=doc["_id"], tenant=doc["tenant"], channel=doc["channel"], target=doc["target"], payload=doc["payload"]
        )
        try:
            # Bounded even when a channel's own timeouts misbehave: past the lease another instance would resend.
            async with asyncio.timeout(self.lease_s * 0.8):
                return await channel.send(notice)
        except TimeoutError:
            return SendResult("retry", error=f"the {doc['channel']} try took longer than {self.lease_s * 0.8:g} s")
        except Exception as exc:
            # A channel that raises still makes a try that counts, so the schedule's cap ends it; left to the
            # claim's lease instead, the same target was tried again every lease, forever.
            log.error("channel_failed", delivery=doc["_id"], channel=doc["channel"], exc_info=True)
            return SendResult("retry", error=f"the {doc['channel']} try failed inside Sitewright", detail=repr(exc))

    def _outcome(self, doc: dict[str, Any], attempt: SendResult) -> tuple[dict[str, Any], ev.Event]:
        """The document's next state and the event reporting this try."""
        next_at: datetime | None = None
        delay = self.schedule.delay_after(doc["attempt"], attempt.retry_after_s) if attempt.verdict == "retry" else None
        if attempt.verdict == "sent":
            state = "sent"
        elif delay is not None:
            state, next_at = "pending", utcnow() + timedelta(seconds=delay)
        else:
            state = "failed"
        last = {"verdict": attempt.verdict, "status_code": attempt.status_code, "error": attempt.error, "at": utcnow()}
        change = {"state": state, "next_attempt_at": next_at, "last": last}
        if state in ("sent", "failed"):
            change["finished_at"] = utcnow()
        cls: type[ev.NotificationSent | ev.NotificationFailed] = (
            ev.NotificationSent if state == "sent" else ev.NotificationFailed
        )
        event = cls(
            # Derived from the outcome, target and try: publishing the same try twice gives the same id.
            event_id=derived_uuid7(doc["outcome_event_id"], "notification", doc["index"], doc["attempt"]),
            job_id=doc["job_id"],
            tenant=doc["tenant"],
            attempt=doc["event_attempt"],
            producer=PRODUCER,
            data=ev.NotificationData(
                channel=doc["channel"],
                target=doc["target"],
                outcome=doc["outcome"],
                outcome_event_id=doc["outcome_event_id"],
                status_code=attempt.status_code,
                error=attempt.error,
                delivery_attempt=doc["attempt"],
                next_attempt_at=next_at,
            ),
        )
        return change, event

    async def _sweep_outboxes(self) -> None:
        """Publish events a crashed try left unpublished (the same ids: consumers drop duplicates)."""
        for doc in await self.store.stale_outboxes():
            events = [ev.EVENT_ADAPTER.validate_python(e) for e in doc.get("outbox") or []]
            if events:
                await self.publisher.publish(events)
            await self.store.clear_outbox(doc["_id"], doc["version"])
