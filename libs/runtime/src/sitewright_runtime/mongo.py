"""The MongoDB client every service uses (PyMongo's native async API; Motor is deprecated)."""

from __future__ import annotations

import time
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

# Documents are read and written as plain dicts (PyMongo's default document class).
Document = dict[str, Any]


def connect(url: str, appname: str = "sitewright") -> AsyncMongoClient[Document]:
    """A client with the settings the read model needs on every MongoDB-compatible server.

    Write options come from the URL, so each server gets its own: the embedded SecantusDB's URL
    (`sitewright_devstack.infra.mongo_url`) turns retryable writes off, since with them on every
    write there slows to tens per second once 10,000 have been made; a replica set keeps the
    driver's retryable writes and says `w=majority` in its URL (`docker-compose.yml`, `deploy/`).
    """
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, appname=appname)


# `meta.read_model` in the base database names the database of the log-derived collections
# (jobs, job_events, results) once a rebuild has replaced it; the gateway's Store follows it too.
ACTIVE_MODEL = "read_model"


async def active_model(db: AsyncDatabase[Document]) -> AsyncDatabase[Document]:
    """The database that holds the log-derived collections now: `db` itself unless a rebuild switched it."""
    doc = await db["meta"].find_one({"_id": ACTIVE_MODEL})
    return db.client[doc["db"]] if doc and doc.get("db") and doc["db"] != db.name else db


class ActiveModel:
    """`active_model`, looked up at most once per `refresh_s`: a handler that reads the read model per
    message would otherwise pay a second query each time for a switch that happens once per rebuild."""

    def __init__(self, db: AsyncDatabase[Document], refresh_s: float = 1.0):
        self.db, self.refresh_s = db, refresh_s
        self._model: AsyncDatabase[Document] | None = None
        self._at = float("-inf")

    async def get(self) -> AsyncDatabase[Document]:
        if time.monotonic() - self._at >= self.refresh_s:
            self._model, self._at = await active_model(self.db), time.monotonic()
        assert self._model is not None
        return self._model
