"""The read model's collections and indexes (MongoDB, via PyMongo's native async client).

The collections derived from the log (`jobs`, `job_events`, `results`) live in
the *model* database, which a rebuild can replace: `meta.read_model` names
the active one, and every gateway follows it (`follow_active_model`). What
the log does not hold (API keys, idempotency keys, dead letters, leases)
stays in the base database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure
from sitewright_runtime.mongo import active_model

INDEX_OPTIONS_CONFLICT = (85, 86)


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
        await self.jobs.create_index([("tenant", ASCENDING), ("_id", DESCENDING)])
        await self.jobs.create_index([("tenant", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)])
        await self.jobs.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
        await self.jobs.create_index([("tenant", ASCENDING), ("updated_at", ASCENDING)])  # /api/status's window
        await self.jobs.create_index([("published", ASCENDING)])
        await self.jobs.create_index([("action.due_at", ASCENDING)])
        await self.events.create_index([("job_id", ASCENDING), ("occurred_at", ASCENDING)])
        await self.events.create_index([("job_id", ASCENDING), ("version", ASCENDING)])  # job stream resume
        await self.dlq.create_index([("tenant", ASCENDING), ("created_at", DESCENDING)])
        # Retention: finished jobs carry `expire_at`; events, results and dead letters expire by age.
        seconds = int(retention.total_seconds())
        await ensure_ttl(self.jobs, "expire_at", 0)
        await ensure_ttl(self.events, "occurred_at", seconds)
        await ensure_ttl(self.results, "created_at", seconds)
        await ensure_ttl(self.dlq, "created_at", seconds)
        await ensure_ttl(self.idempotency, "created_at", seconds)
        await self.api_keys.create_index([("key_id", ASCENDING)], unique=True)


async def ensure_ttl(collection: AsyncCollection, field: str, seconds: int) -> None:
    """A TTL index on `field`; when the retention setting changed, the index is rebuilt with the new period."""
    name = f"ttl_{field}"
    try:
        await collection.create_index([(field, ASCENDING)], name=name, expireAfterSeconds=seconds)
    except OperationFailure as exc:
        if exc.code not in INDEX_OPTIONS_CONFLICT:
            raise
        await collection.drop_index(name)
        await collection.create_index([(field, ASCENDING)], name=name, expireAfterSeconds=seconds)
