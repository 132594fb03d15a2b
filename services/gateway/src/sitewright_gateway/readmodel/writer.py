"""Applies batches of `jobs.events` to the read model, using the pure rules of `rules.py`.

One batch costs one bulk write of the job documents that changed (all the
events of one job in the batch folded into one update), one unordered insert
into the audit trail (a page per job: `audit.py`; and one into results, when
jobs completed), and a read
of only those jobs the projector has not written recently: the documents it
wrote last are kept (a bounded cache), because on the embedded database that
read cost about as much as the write.
A cached document can be stale only if another writer changed the job's
`version` meanwhile; the write's version filter then misses, and the job is
read again and re-folded, as any lost race is.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from aiokafka.structs import ConsumerRecord
from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from sitewright_contracts import Event, UndecodableEvent, decode, derived_uuid7, header
from sitewright_contracts import events as ev
from sitewright_contracts.models import ErrorInfo
from sitewright_contracts.topics import H_TRACEPARENT
from sitewright_runtime.batch_consumer import BATCH_ATTEMPTS
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.logs import get_logger, log_context
from sitewright_runtime.metrics import JOB_DURATION, JOBS_FINISHED, PROJECTION_LAG, PROJECTION_WRITES

from . import audit
from .documents import ResultDocument
from .rules import RetryPolicy, changed_fields, due_at, project, request_of
from .store import DUPLICATE_KEY, Store, by_ids

log = get_logger(__name__)
# Job documents kept after writing them (about 2-3 KB each); a job's events arrive within
# seconds of each other, so a few thousand cover every job in flight at full speed.
CACHE_JOBS = 4000
# Events after a job's outcome: one the projector cannot record does not fail the job.
_AFTER_THE_JOB = (ev.JobCompleted, ev.JobFailed, ev.JobCancelled, ev.NotificationSent, ev.NotificationFailed)


class Projection:
    """The projector group's batch handler."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        policy: RetryPolicy,
        group: str,
        retention: timedelta,
        notify_grace: timedelta | None = None,
    ):
        self.store = store
        self.retention = retention
        self.notify_grace = notify_grace
        self.publisher = publisher
        self.policy = policy
        self.group = group
        self.applied = 0
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._cache_model = ""

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        decoded: list[tuple[Event, tuple[int, int]]] = []
        traces: dict[str, str] = {}  # request event id -> the trace its message carried (the job's trace)
        for record in records:
            try:
                event = decode(record.value)
                decoded.append((event, (record.partition, record.offset)))
                if isinstance(event, ev.JobRequested) and (trace := header(record.headers, H_TRACEPARENT)):
                    traces[event.event_id] = trace
            except UndecodableEvent as exc:
                # The projector sees every message, so it is the one that dead-letters the undecodable.
                await self.publisher.dead_letter(
                    record, group=self.group, reason=exc.reason, error=exc.detail, attempts=1
                )
        if not decoded:
            return
        await self._apply(decoded, traces)
        self.applied += len(decoded)
        PROJECTION_LAG.set(max(0.0, time.time() - decoded[-1][0].occurred_at.timestamp()))

    async def set_aside(self, record: ConsumerRecord, error: BaseException) -> None:
        """A message the projector kept failing on: to the DLQ, and its job failed with a readable error.

        Without this, one event the read model cannot store (a page no database would take) held every
        tenant's projection: its batch was retried forever."""
        detail = f"{type(error).__name__}: {error}"
        await self.publisher.dead_letter(
            record, group=self.group, reason="unprocessable", error=detail, attempts=BATCH_ATTEMPTS
        )
        event = decode(record.value)  # it decoded: undecodable messages never reach the fold
        if isinstance(event, _AFTER_THE_JOB):
            return  # the job has its outcome; the message itself waits in the DLQ
        stage = event.data.stage if isinstance(event, ev.JobRetryRequested) else (type(event).stage or "crawl")
        failed = ev.JobFailed(
            event_id=derived_uuid7(event.event_id, "unprocessable"),
            job_id=event.job_id,
            tenant=event.tenant,
            attempt=event.attempt,
            producer="gateway.projector",
            data=ev.JobFailedData(
                stage=stage,
                error=ErrorInfo(
                    code="unprocessable_event",
                    message=f"Sitewright could not record this job's {event.type} event; it is kept in the "
                    "dead-letter queue for an operator. Retry the job to start it again.",
                ),
            ),
        )
        await self.publisher.publish([failed], traceparent=header(record.headers, H_TRACEPARENT))

    async def _apply(self, decoded: list[tuple[Event, tuple[int, int]]], traces: dict[str, str]) -> None:
        """Fold the batch into its jobs; write the audit trail and results first, then the jobs.

        In that order a reader who sees a job `completed` finds its result and its whole history, and a
        crash between the writes leaves only what the redelivered batch writes again: the result of the
        completion the job document names (`result_at`) is rewritten whenever that event comes again.
        """
        by_job: dict[str, list[tuple[Event, tuple[int, int]]]] = {}
        for item in decoded:
            by_job.setdefault(item[0].job_id, []).append(item)
        if self._cache_model != self.store.jobs.database.name:  # switched to a rebuilt read model
            self._cache.clear()
            self._cache_model = self.store.jobs.database.name
        pending, recorded = set(by_job), False
        while pending:
            docs = {job_id: self._cache[job_id] for job_id in pending if job_id in self._cache}
            if missing := [job_id for job_id in pending if job_id not in docs]:
                docs.update({d["_id"]: d async for d in by_ids(self.store.jobs, missing)})
            fold = _fold(
                {job_id: by_job[job_id] for job_id in pending},
                docs,
                self.policy,
                self.retention,
                traces,
                self.notify_grace,
            )
            first_writes = [self._write_results(fold.results)] + ([] if recorded else [self._record(fold.pages)])
            await asyncio.gather(*first_writes)
            recorded = True
            conflicts = await self._write(fold.writes, fold.versions)
            self._remember(fold.written, conflicts)
            for doc in fold.finished:
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
        PROJECTION_WRITES.labels("jobs").inc(len(writes))
        conflicts: set[str] = set()
        try:
            modified = (await self.store.jobs.bulk_write(writes, ordered=False)).modified_count
        except BulkWriteError as exc:
            for err in exc.details.get("writeErrors", []):
                if err.get("code") != DUPLICATE_KEY:
                    raise
                conflicts.add(err["op"]["_id"])
            modified = exc.details.get("nModified", 0)
        if modified < len(versions):
            # An update whose version guard did not hold left someone else's version in place.
            async for d in by_ids(self.store.jobs, list(versions), {"version": 1}):
                if d["version"] != versions[d["_id"]]:
                    conflicts.add(d["_id"])
        return conflicts

    async def _record(self, pages: list[dict]) -> None:
        if not pages:  # a batch of requests the gateway recorded
            return
        PROJECTION_WRITES.labels("job_events").inc(len(pages))
        await self._insert_new(self.store.events, pages)

    async def _write_results(self, completions: list[ev.JobCompleted]) -> None:
        """Insert each job's result; one already there is the same (the completion at `result_at`).

        An insert, not an upsert: on the embedded database an upsert costs a query and a write."""
        if not completions:
            return
        PROJECTION_WRITES.labels("results").inc(len(completions))
        docs: list[ResultDocument] = [
            # The rest of the document is SeoResult's fields, which the dict's type cannot spell out.
            cast(
                ResultDocument,
                {
                    "_id": e.job_id,
                    "tenant": e.tenant,
                    "event_id": e.event_id,
                    "created_at": e.occurred_at,
                    **e.data.result.model_dump(mode="json", by_alias=True),
                },
            )
            for e in completions
        ]
        await self._insert_new(self.store.results, docs)

    @staticmethod
    async def _insert_new(collection: AsyncCollection, docs: Sequence[Mapping[str, Any]]) -> None:
        """Insert `docs`, skipping those already there (a redelivered batch)."""
        try:
            await collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(err.get("code") != DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                raise


@dataclass
class Fold:
    """What folding a batch into its jobs' documents gives the writes."""

    writes: list = field(default_factory=list)  # the jobs' bulk write
    versions: dict[str, int] = field(default_factory=dict)  # each updated job's version after our write
    written: dict[str, dict] = field(default_factory=dict)  # each job's document after the batch
    finished: list[dict] = field(default_factory=list)  # jobs the batch finished
    pages: list[dict] = field(default_factory=list)  # the audit trail's pages, one per job
    results: list[ev.JobCompleted] = field(default_factory=list)  # the completions that are their job's result


def _fold(
    by_job: dict[str, list[tuple[Event, tuple[int, int]]]],
    docs: dict[str, dict],
    policy: RetryPolicy,
    retention: timedelta,
    traces: dict[str, str] | None = None,
    notify_grace: timedelta | None = None,
) -> Fold:
    """Fold each job's events into its document. `traces` gives requests' traces (event id -> traceparent):
    a document made from its request here carries the job's trace, as one the gateway wrote does."""
    fold = Fold()
    for job_id, events in by_job.items():
        old = docs.get(job_id)
        new = old
        entries: dict[str, dict] = {}
        if old is not None and old["position"] is None and not any(isinstance(e, ev.JobRequested) for e, _ in events):
            # The job's later events arrive but its request never came on this log: the embedded
            # broker lost it in a restart. Its audit trail gets it from the document (at no log
            # position), so the job's history still starts at its request.
            request = request_of(old)
            entries[request.event_id] = audit.entry(request, (-1, -1), old)
        for event, position in events:
            changed = project(new, event, position, policy)
            if (
                changed is None
                and isinstance(event, ev.JobRequested)
                and new is not None
                and _at(position) == new["position"]
            ):
                continue  # the gateway recorded the request where it landed, page and all (`intake.accept`)
            new = changed or new
            # The state the event itself produced: a duplicate later in the batch must not
            # replace it with a later state; the audit trail would then differ between replays.
            entries.setdefault(event.event_id, audit.entry(event, position, new))
        if entries:
            fold.pages.append(audit.page(job_id, events[0][0].tenant, list(entries.values())))
        if new is None:
            continue
        fold.written[job_id] = new
        fold.results += [
            e
            for e, p in events
            if isinstance(e, ev.JobCompleted) and new.get("result_at") == {"partition": p[0], "offset": p[1]}
        ]
        if new is old:
            continue
        new["due_at"] = due_at(new, retention, notify_grace)
        if old is None:
            if traces and (trace := traces.get(new["seen"][0])):
                new["traceparent"] = trace  # else the job's log lines and the scheduler's events lose its trace
            fold.writes.append(InsertOne(new))
        else:
            if old.get("published") is False and any(isinstance(e, ev.JobRequested) for e, _ in events):
                # The request is on the log after all (a publish the gateway gave up on arrived):
                # this write is also its published mark, so the scheduler does not publish it again.
                new = {k: v for k, v in new.items() if k != "outbox"} | {"published": True}
                fold.written[job_id] = new
                update = {"$set": changed_fields(old, new), "$unset": {"outbox": ""}}
                fold.writes.append(UpdateOne({"_id": job_id, "version": old["version"]}, update))
            else:
                fold.writes.append(UpdateOne({"_id": job_id}, guarded_set(old["version"], changed_fields(old, new))))
            fold.versions[job_id] = new["version"]
        if new["status"] != (old or {}).get("status") and new.get("finished_at") is not None:
            fold.finished.append(new)
    return fold


def _at(position: tuple[int, int]) -> dict[str, int]:
    return {"partition": position[0], "offset": position[1]}


def guarded_set(version: int, fields: dict) -> list[dict]:
    """An update that `$set`s `fields` only while the document is still at `version` (a lost race changes nothing).

    The guard sits in an update pipeline rather than in the filter: the embedded database looks a filter on
    `_id` alone up by its primary key, but sends `{_id, version}` through its compound-index planners first,
    which cost a third of each update (`python -m bench.store_ops` measures both; figures in `bench/README.md`).
    MongoDB runs both forms by the `_id` index.
    """
    merged = {"$mergeObjects": ["$$ROOT", {"$literal": fields}]}
    return [{"$replaceWith": {"$cond": [{"$eq": ["$version", version]}, merged, "$$ROOT"]}}]
