"""The read model's collections and indexes (MongoDB, via PyMongo's native async client).

The collections derived from the log (`jobs`, `job_events`, `results`) live in
the *model* database, which a rebuild can replace: `meta.read_model` names
the active one, and every gateway follows it (`follow_active_model`). What
the log does not hold (API keys, idempotency keys, dead letters, leases)
stays in the base database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from sitewright_contracts.models import ACTIVE_STATUSES, JOB_STATUSES
from sitewright_runtime.mongo import active_model

INDEX_OPTIONS_CONFLICT = (85, 86)
# Indexes earlier versions of Sitewright created and no longer use: dropped at start, since every write pays
# for each index. Only these: an index someone else added to a collection is theirs to keep.
RETIRED_INDEXES = frozenset(
    {
        "tenant_1__id_-1",
        "tenant_1_status_1__id_-1",
        "tenant_1_updated_at_1",
        "status_1_updated_at_1",
        "published_1",
        "action.due_at_1",
        "outbox",
        "actions",
        "ttl_expire_at",
        "job_id_1_occurred_at_1",
        "job_id_1_version_1",
    }
)
DUPLICATE_KEY = 11000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The embedded database checks each document a query finds against the query's whole `$in` list, so
# one query by N ids costs N squared; 50 at a time keeps a document's share small (`bench/README.md`).
IDS_PER_QUERY = 50


@dataclass
class Store:
    db: AsyncDatabase
    model: AsyncDatabase | None = None  # the database of the log-derived collections; `db` unless rebuilt

    def __post_init__(self) -> None:
        self.model = self.model if self.model is not None else self.db

    @property
    def jobs(self) -> AsyncCollection:
        return self.model["jobs"]  # type: ignore[index]

    @property
    def events(self) -> AsyncCollection:
        return self.model["job_events"]  # type: ignore[index]

    @property
    def results(self) -> AsyncCollection:
        return self.model["results"]  # type: ignore[index]

    @property
    def meta(self) -> AsyncCollection:
        return self.db["meta"]

    async def follow_active_model(self) -> bool:
        """Switch to the model database `meta` names (after a rebuild); True when it changed."""
        active = await active_model(self.db)
        if active.name == self.model.name:  # type: ignore[union-attr]
            return False
        self.model = active
        return True

    @property
    def idempotency(self) -> AsyncCollection:
        return self.db["idempotency_keys"]

    @property
    def api_keys(self) -> AsyncCollection:
        return self.db["api_keys"]

    @property
    def dlq(self) -> AsyncCollection:
        return self.db["dlq"]

    @property
    def leases(self) -> AsyncCollection:
        return self.db["leases"]

    async def create_indexes(self, retention: timedelta = timedelta(days=7)) -> None:
        """The indexes the queries need, and no more: on the embedded database every write rewrites
        every index entry of the document, so each index on `jobs` costs every projector update
        (measured: 7 indexes cut bulk updates from about 650/s to 170/s). A partial index costs every
        write too, even of documents outside it (`python -m bench.store_ops`), so everything the
        scheduler has to do at a time shares one: `due_at`. Indexes earlier versions declared are dropped.
        """
        await self._give_old_documents_due_at()
        await sync_indexes(
            self.jobs,
            [
                # A tenant's jobs in one status, newest first, and all of them a status at a time (`tenant_jobs`);
                # status alone for the scheduler (stuck scan, gauges).
                ([("status", ASCENDING), ("tenant", ASCENDING), ("_id", DESCENDING)], {}),
                # When the scheduler acts on a job (`projector.due_at`): a request left unpublished, a failed
                # stage's retry or failure, a finished job's expiry. (The embedded database matches a query to a
                # partial index by equality or range only, not $exists.)
                ([("due_at", ASCENDING)], {"name": "due", "partialFilterExpression": {"due_at": {"$gte": EPOCH}}}),
            ],
        )
        # The audit trail's pages are found by their job (`audit.job_events`); the job ids are UUIDv7,
        # so retention deletes old jobs' pages by a range of that index, without a TTL index.
        await sync_indexes(self.events, [([("job_id", ASCENDING)], {})])
        seconds = int(retention.total_seconds())
        await sync_indexes(self.results, [([("created_at", ASCENDING)], ttl("created_at", seconds))])
        await sync_indexes(
            self.dlq,
            [
                ([("tenant", ASCENDING), ("created_at", DESCENDING)], {}),
                ([("created_at", ASCENDING)], ttl("created_at", seconds)),
            ],
        )
        await sync_indexes(self.idempotency, [([("created_at", ASCENDING)], ttl("created_at", seconds))])
        await self.api_keys.create_index([("key_id", ASCENDING)], unique=True)

    async def _give_old_documents_due_at(self) -> None:
        """A read model from before `due_at` kept the scheduler's work under three partial indexes (an
        unpublished request, a due action, a TTL on `expire_at`): once, while they still exist to find those
        documents, give each its `due_at`; the indexes are dropped after."""
        old = {i["name"] async for i in await self.jobs.list_indexes()}
        if "outbox" in old:
            await self.jobs.update_many({"published": False}, [{"$set": {"due_at": "$created_at"}}])
        if "actions" in old:
            await self.jobs.update_many({"action.due_at": {"$gte": EPOCH}}, [{"$set": {"due_at": "$action.due_at"}}])
        if "ttl_expire_at" in old:
            await self.jobs.update_many(
                {"expire_at": {"$gte": EPOCH}}, [{"$set": {"due_at": "$expire_at"}}, {"$unset": "expire_at"}]
            )


async def active_jobs(
    jobs: AsyncCollection, tenant: str | None = None, projection: dict[str, Any] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every active job (of `tenant`), one indexed query per status: the embedded database's planner
    uses an index only for equalities (or one `$in` alone) on its fields, and scans the whole
    collection for `{"status": {"$in": [...]}, "tenant": t}` or any other field beside them."""
    for status in ACTIVE_STATUSES:
        async for doc in jobs.find({"status": status} | ({"tenant": tenant} if tenant else {}), projection):
            yield doc


async def tenant_job(jobs: AsyncCollection, job_id: str, tenant: str) -> dict[str, Any] | None:
    """The job `job_id` if it is `tenant`'s. Found by `_id` alone and the tenant checked here: the embedded
    database answers `{_id}` from its primary key, but plans `{_id, tenant}`, with no index on both, as a
    collection scan, much slower (`python -m bench.store_ops`; figures in `bench/README.md`)."""
    doc = await jobs.find_one({"_id": job_id})
    return doc if doc is not None and doc["tenant"] == tenant else None


async def tenant_jobs(
    jobs: AsyncCollection,
    tenant: str,
    ids: dict[str, Any],
    limit: int,
    projection: dict[str, Any] | None = None,
    statuses: Sequence[str] = JOB_STATUSES,
) -> list[dict[str, Any]]:
    """A tenant's newest `limit` jobs in `statuses` with `_id` in the range `ids` (e.g. `{"$lt": cursor}`).

    One query per status on the status index, merged: a `(tenant, _id)` index of its own cost every write of
    every job (`python -m bench.store_ops`), while a listing is one request among thousands of writes."""
    found = await asyncio.gather(
        *(
            _scan(
                jobs.find({"status": s, "tenant": tenant} | ({"_id": ids} if ids else {}), projection)
                .sort("_id", -1)
                .limit(limit)
            )
            for s in statuses
        )
    )
    return sorted((d for docs in found for d in docs), key=lambda d: d["_id"], reverse=True)[:limit]


async def _scan(cursor: Any) -> list[dict[str, Any]]:
    return [d async for d in cursor]


def id_chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """`ids` in slices of `IDS_PER_QUERY`, one `{"_id": {"$in": slice}}` query each."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield list(ids[start : start + IDS_PER_QUERY])


async def by_ids(
    collection: AsyncCollection, ids: Sequence[str], projection: dict[str, Any] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The documents of `collection` with these `_id`s (in slices: `IDS_PER_QUERY`)."""
    for chunk in id_chunks(ids):
        async for doc in collection.find({"_id": {"$in": chunk}}, projection):
            yield doc


def ttl(field: str, seconds: int, partial: dict | None = None) -> dict:
    options: dict = {"name": f"ttl_{field}", "expireAfterSeconds": seconds}
    if partial:
        options["partialFilterExpression"] = partial
    return options


async def sync_indexes(collection: AsyncCollection, wanted: list[tuple[list[tuple[str, int]], dict]]) -> None:
    """Give `collection` the indexes `wanted` (keys, options): create the missing, rebuild those whose options
    changed (a new retention period), and drop those an earlier Sitewright declared (`RETIRED_INDEXES`).
    Any other index is an operator's own, and stays."""
    names = set()
    for keys, options in wanted:
        name = options.get("name") or "_".join(f"{k}_{d}" for k, d in keys)
        names.add(name)
        try:
            await collection.create_index(keys, **(options | {"name": name}))
        except OperationFailure as exc:
            if exc.code not in INDEX_OPTIONS_CONFLICT:
                raise
            await collection.drop_index(name)
            await collection.create_index(keys, **(options | {"name": name}))
    async for index in await collection.list_indexes():
        if index["name"] in RETIRED_INDEXES and index["name"] not in names:
            await collection.drop_index(index["name"])
