"""Webhook endpoints and their signing secrets (the `webhook_endpoints` collection).

One document per (tenant, URL). The gateway registers and rotates them; the
notifier signs with them, creates one on first use (so a job's webhook
target works without registering first) and disables one that answered 410.
Several secrets may be active at once: deliveries carry a signature per
active secret, so a rotation is "add the new one, let receivers switch, let
the old one expire" with no delivery that fails verification in between.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

COLLECTION = "webhook_endpoints"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes
MAX_SECRETS = 5


def new_secret() -> str:
    """A fresh Standard Webhooks secret, `whsec_<base64 of 32 random bytes>`."""
    return "whsec_" + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def endpoint_id(tenant: str, url: str) -> str:
    """A stable id per tenant and URL, short enough for a path segment."""
    return "ep_" + hashlib.sha256(f"{tenant}\n{url}".encode()).hexdigest()[:24]


def active_secrets(doc: dict[str, Any], now: datetime | None = None) -> list[str]:
    """The endpoint's secrets that still sign, newest first."""
    now = now or datetime.now(UTC)
    return [s["secret"] for s in doc.get("secrets", []) if s.get("expires_at") is None or s["expires_at"] > now]


class WebhookEndpoints:
    """Reads and writes endpoint documents; every write is filtered on `_id` (no find-and-modify)."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]):
        self.collection = collection

    async def create_indexes(self) -> None:
        await self.collection.create_index([("tenant", ASCENDING), ("created_at", ASCENDING)])

    async def get(self, tenant: str, endpoint: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": endpoint, "tenant": tenant})

    async def list(self, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        return [d async for d in self.collection.find({"tenant": tenant}).sort("created_at", ASCENDING).limit(limit)]

    async def ensure(self, tenant: str, url: str) -> dict[str, Any]:
        """The endpoint for (tenant, URL), created with a new secret if it does not exist yet."""
        _id = endpoint_id(tenant, url)
        doc = await self.collection.find_one({"_id": _id})
        if doc is not None:
            return doc
        now = datetime.now(UTC)
        doc = {
            "_id": _id,
            "tenant": tenant,
            "url": url,
            "disabled": False,
            "disabled_reason": None,
            "secrets": [{"secret": new_secret(), "created_at": now, "expires_at": None}],
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:  # another instance created it first: theirs is the one
            doc = await self.collection.find_one({"_id": _id})
            assert doc is not None
        return doc

    async def enable(self, tenant: str, url: str) -> dict[str, Any]:
        """Register (or re-enable after a 410) the endpoint for (tenant, URL)."""
        doc = await self.ensure(tenant, url)
        if doc["disabled"]:
            await self.collection.update_one(
                {"_id": doc["_id"]},
                {"$set": {"disabled": False, "disabled_reason": None, "updated_at": datetime.now(UTC)}},
            )
            doc = await self.collection.find_one({"_id": doc["_id"]}) or doc
        return doc

    async def disable(self, endpoint: str, reason: str) -> None:
        await self.collection.update_one(
            {"_id": endpoint}, {"$set": {"disabled": True, "disabled_reason": reason, "updated_at": datetime.now(UTC)}}
        )

    async def rotate(self, tenant: str, endpoint: str, grace_s: float) -> dict[str, Any] | None:
        """Add a new secret; the current ones keep signing for `grace_s` seconds, then stop."""
        doc = await self.get(tenant, endpoint)
        if doc is None:
            return None
        now = datetime.now(UTC)
        until = now + timedelta(seconds=grace_s)
        kept = [
            s | {"expires_at": min(s["expires_at"], until) if s.get("expires_at") else until}
            for s in doc["secrets"]
            if s.get("expires_at") is None or s["expires_at"] > now
        ]
        # Newest first, and a bounded list: rotating in a loop must not grow the document.
        secrets = [{"secret": new_secret(), "created_at": now, "expires_at": None}, *kept][:MAX_SECRETS]
        result = await self.collection.update_one(
            {"_id": endpoint, "updated_at": doc["updated_at"]}, {"$set": {"secrets": secrets, "updated_at": now}}
        )
        if result.modified_count == 0:  # a concurrent rotation won; report what is stored now
            return await self.get(tenant, endpoint)
        return doc | {"secrets": secrets, "updated_at": now}
