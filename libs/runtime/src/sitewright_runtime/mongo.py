"""The MongoDB client every service uses (PyMongo's native async API; Motor is deprecated)."""

from __future__ import annotations

from pymongo import AsyncMongoClient


def connect(url: str, appname: str = "sitewright") -> AsyncMongoClient:
    """A client with the settings the read model needs on every MongoDB-compatible server.

    Retryable writes are off: on SecantusDB every write slows to tens per
    second once 10,000 have been made with them on, and every write here is
    idempotent anyway (filtered on `_id` and `version`, or keyed by event id).
    """
    return AsyncMongoClient(url, retryWrites=False, tz_aware=True, serverSelectionTimeoutMS=5000, appname=appname)
