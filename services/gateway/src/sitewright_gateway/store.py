"""The read model's collections and indexes (MongoDB, via PyMongo's native async client)."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase


@dataclass
class Store:
    db: AsyncDatabase

    @property
    def jobs(self) -> AsyncCollection:
        return self.db["jobs"]

    @property
    def events(self) -> AsyncCollection:
        return self.db["job_events"]

    @property
    def results(self) -> AsyncCollection:
        return self.db["results"]

    @property
    def idempotency(self) -> AsyncCollection:
        return self.db["idempotency_keys"]

    @property
    def api_keys(self) -> AsyncCollection:
        return self.db["api_keys"]

    @property
    def leases(self) -> AsyncCollection:
        return self.db["leases"]

    async def create_indexes(self) -> None:
        await self.jobs.create_index([("tenant", ASCENDING), ("_id", DESCENDING)])
        await self.jobs.create_index([("tenant", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)])
        await self.jobs.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
        await self.jobs.create_index([("tenant", ASCENDING), ("updated_at", ASCENDING)])  # /api/status's window
        await self.jobs.create_index([("published", ASCENDING)])
        await self.jobs.create_index([("action.due_at", ASCENDING)])
        await self.events.create_index([("job_id", ASCENDING), ("occurred_at", ASCENDING)])
        await self.events.create_index([("job_id", ASCENDING), ("version", ASCENDING)])  # job stream resume
        await self.api_keys.create_index([("key_id", ASCENDING)], unique=True)
