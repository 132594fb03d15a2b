"""Applies batches of `jobs.events` to the read model, using the pure rules of `projector.py`.

One batch costs one bulk write of the job documents that changed (all the
events of one job in the batch folded into one update), one unordered insert
into the audit trail, and a read of only those jobs the projector has not
written recently: the documents it wrote last are kept (a bounded cache),
because on the embedded database that read cost about as much as the write.
A cached document can be stale only if another writer changed the job's
`version` meanwhile; the write's version filter then misses, and the job is
read again and re-folded, as any lost race is.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta

from aiokafka.structs import ConsumerRecord
from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError
from sitewright_contracts import Event, UndecodableEvent, decode
from sitewright_contracts import events as ev
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.logs import get_logger, log_context
from sitewright_runtime.metrics import JOB_DURATION, JOBS_FINISHED, PROJECTION_LAG

from .projector import RetryPolicy, changed_fields, event_document, project, request_of
from .store import Store

log = get_logger(__name__)
DUPLICATE_KEY = 11000
# Job documents kept after writing them (about 2-3 KB each); a job's events arrive within
# seconds of each other, so a few thousand cover every job in flight at full speed.
CACHE_JOBS = 4000
# What folding a batch hands the audit trail's write: each event's resulting job state, requests
# recovered from job documents, and the completions that finished their job.
Folded = tuple[dict[str, dict], list[dict], set[tuple[int, int]]]


class Projection:
    """The projector group's batch handler."""

    def __init__(self, store: Store, publisher: Publisher, policy: RetryPolicy, group: str, retention: timedelta):
        self.store = store
        self.retention = retention
        self.publisher = publisher
        self.policy = policy
        self.group = group
        self.applied = 0
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._cache_model = ""

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        decoded: list[tuple[Event, tuple[int, int]]] = []
        for record in records:
            try:
                decoded.append((decode(record.value), (record.partition, record.offset)))
            except UndecodableEvent as exc:
                # The projector sees every message, so it is the one that dead-letters the undecodable.
                await self.publisher.dead_letter(record, group=self.group, reason=exc.reason, error=exc.detail, attempts=1)
        if not decoded:
            return
        # Two collections, no order between them: both writes in flight at once. The audit trail
        # records each event's resulting job state (for job streams), known once the events are folded.
        folded: asyncio.Future[Folded] = asyncio.get_running_loop().create_future()

        async def record() -> None:
            await self._record_events(decoded, *await folded)

        await asyncio.gather(self._apply_jobs(decoded, folded), record())
        self.applied += len(decoded)
        PROJECTION_LAG.set(max(0.0, time.time() - decoded[-1][0].occurred_at.timestamp()))

    async def _apply_jobs(
        self, decoded: list[tuple[Event, tuple[int, int]]], folded: asyncio.Future[Folded]
    ) -> None:
        """Fold the events into their jobs and write them; `folded` gets the job document right after each event."""
        try:
            await self._fold_and_write(decoded, folded)
        finally:
            if not folded.done():
                folded.cancel()  # failed before folding: record nothing, the batch is redelivered

    async def _fold_and_write(
        self, decoded: list[tuple[Event, tuple[int, int]]], folded: asyncio.Future[Folded]
    ) -> None:
        after: dict[str, dict] = {}
        recovered: list[dict] = []
        # Where the completion the job document shows sits in the log. A stage that ran twice completes
        # twice: a stale attempt under another event id, a redelivered one under the same id at a later
        # time; neither result may replace the first, whichever batch it falls in.
        completions: set[tuple[int, int]] = set()
        by_job: dict[str, list[tuple[Event, tuple[int, int]]]] = {}
        for item in decoded:
            by_job.setdefault(item[0].job_id, []).append(item)
        pending = set(by_job)
        if self._cache_model != self.store.jobs.database.name:  # switched to a rebuilt read model
            self._cache.clear()
            self._cache_model = self.store.jobs.database.name
        while pending:
            docs = {job_id: self._cache[job_id] for job_id in pending if job_id in self._cache}
            if missing := [job_id for job_id in pending if job_id not in docs]:
                docs.update({d["_id"]: d async for d in self.store.jobs.find({"_id": {"$in": missing}})})
            written: dict[str, dict] = {}
            writes, versions, finished = [], {}, []
            for job_id in pending:
                old = docs.get(job_id)
                new = old
                if old is not None and old["position"] is None and not any(isinstance(e, ev.JobRequested) for e, _ in by_job[job_id]):
                    # The job's later events arrive but its request never came on this log: the embedded
                    # broker lost it in a restart. Its audit trail gets it from the document (at no log
                    # position), so the job's history still starts at its request.
                    recovered.append(event_document(request_of(old), (-1, -1), old))
                for event, position in by_job[job_id]:
                    before = new
                    new = project(new, event, position, self.policy) or new
                    if new is not None:
                        # The state the event itself produced: a duplicate later in the batch, or the
                        # re-fold after a lost race (which finds the event already seen), must not
                        # replace it with a later state; the audit trail would then differ between replays.
                        after.setdefault(event.event_id, new)
                        if isinstance(event, ev.JobCompleted) and new["status"] == "completed" and (before or {}).get("status") != "completed":
                            completions.add(position)
                if new is None:
                    continue
                written[job_id] = new
                if new is old:
                    continue
                # A finished job expires (TTL index) one retention period after it finished; a revived one does not.
                new["expire_at"] = new["finished_at"] + self.retention if new.get("finished_at") else None
                if old is None:
                    writes.append(InsertOne(new))
                else:
                    update: dict = {"$set": changed_fields(old, new)}
                    if old.get("published") is False and any(isinstance(e, ev.JobRequested) for e, _ in by_job[job_id]):
                        # The request is on the log: this write is also the gateway's published mark
                        # (which then finds nothing left to do), one write per job fewer.
                        update = {"$set": update["$set"] | {"published": True}, "$unset": {"outbox": ""}}
                        new = {k: v for k, v in new.items() if k != "outbox"} | {"published": True}
                        written[job_id] = new
                    writes.append(UpdateOne({"_id": job_id, "version": old["version"]}, update))
                    versions[job_id] = new["version"]
                if new["status"] != (old or {}).get("status") and new.get("finished_at") is not None:
                    finished.append(new)
            if not folded.done():
                folded.set_result((after, recovered, completions))  # the audit trail's write starts now, beside the jobs' write
            conflicts = await self._write(writes, versions)
            self._remember(written, conflicts)
            for doc in finished:
                if doc["_id"] not in conflicts:
                    duration = (doc["finished_at"] - doc["created_at"]).total_seconds()
                    JOBS_FINISHED.labels(doc["status"]).inc()
                    JOB_DURATION.observe(duration)
                    with log_context(job_id=doc["_id"], event_id=doc["seen"][-1], traceparent=doc.get("traceparent")):
                        log.info("job_finished", status=doc["status"], duration_s=round(duration, 3))
            # Another writer changed a document between our read and write: read it again and re-fold.
            pending = conflicts

    def _remember(self, written: dict[str, dict], conflicts: set[str]) -> None:
        """Keep what the database now holds; forget jobs whose write lost a race, and finished ones."""
        for job_id, doc in written.items():
            if job_id in conflicts or doc["finished_at"] is not None:
                self._cache.pop(job_id, None)
            else:
                self._cache[job_id] = doc
                self._cache.move_to_end(job_id)
        while len(self._cache) > CACHE_JOBS:
            self._cache.popitem(last=False)

    async def _write(self, writes: list, versions: dict[str, int]) -> set[str]:
        """Bulk-write; return the ids whose write lost a race (version moved, or inserted meanwhile).

        `versions` maps each updated job to the version our write gives it.
        """
        if not writes:
            return set()
        conflicts: set[str] = set()
        try:
            matched = (await self.store.jobs.bulk_write(writes, ordered=False)).matched_count
        except BulkWriteError as exc:
            for err in exc.details.get("writeErrors", []):
                if err.get("code") != DUPLICATE_KEY:
                    raise
                conflicts.add(err["op"]["_id"])
            matched = exc.details.get("nMatched", 0)
        if matched < len(versions):
            # An update whose version filter did not match left someone else's version in place.
            async for d in self.store.jobs.find({"_id": {"$in": list(versions)}}, {"version": 1}):
                if d["version"] != versions[d["_id"]]:
                    conflicts.add(d["_id"])
        return conflicts

    async def _record_events(
        self, decoded: list[tuple[Event, tuple[int, int]]], after: dict[str, dict], recovered: list[dict], completions: set[tuple[int, int]]
    ) -> None:
        # Both built before the first await: a re-fold after a lost race (which runs meanwhile) adds to
        # `after` and `completions`, and what is recorded must not depend on how far it got.
        docs = recovered + [event_document(e, p, after.get(e.event_id)) for e, p in decoded]
        results = [
            ReplaceOne(
                {"_id": e.job_id},
                {
                    "_id": e.job_id,
                    "tenant": e.tenant,
                    "event_id": e.event_id,
                    "created_at": e.occurred_at,
                    **e.data.result.model_dump(mode="json", by_alias=True),
                },
                upsert=True,
            )
            for e, p in decoded
            if isinstance(e, ev.JobCompleted) and p in completions
        ]
        try:
            await self.store.events.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(err.get("code") != DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                raise
        if results:
            await self.store.results.bulk_write(results, ordered=False)

