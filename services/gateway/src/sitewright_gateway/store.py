"""The read model's collections and indexes (MongoDB, via PyMongo's native async client)."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase


def connect(url: str) -> AsyncMongoClient:
    """A client with the settings the read model needs on every MongoDB-compatible server.

    Retryable writes are off: on SecantusDB every write slows to tens per
    second once 10,000 have been made with them on, and every write here is
    idempotent anyway (filtered on `_id` and `version`, or keyed by event id).
    """
    return AsyncMongoClient(url, retryWrites=False, tz_aware=True, serverSelectionTimeoutMS=5000, appname="sitewright")


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
    def leases(self) -> AsyncCollection:
        return self.db["leases"]

    async def create_indexes(self) -> None:
        await self.jobs.create_index([("tenant", ASCENDING), ("_id", DESCENDING)])
        await self.jobs.create_index([("tenant", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)])
        await self.jobs.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
        await self.jobs.create_index([("published", ASCENDING)])
        await self.jobs.create_index([("action.due_at", ASCENDING)])
        await self.events.create_index([("job_id", ASCENDING), ("occurred_at", ASCENDING)])
