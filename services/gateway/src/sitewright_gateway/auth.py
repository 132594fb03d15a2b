"""API keys: who is calling, and which tenant's jobs they may see.

A key is `sw_` plus 32 random bytes, shown once when it is created. Only its
SHA-256 is stored (a key is high-entropy, so a slow hash would buy nothing and
cost a hash per request). Keys are cached for a few seconds per gateway
process, so a revoked key stops working on every instance within
`KEY_CACHE_S`; the instance that revokes it forgets it at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from sitewright_contracts.events import utcnow

KEY_PREFIX = "sw_"
KEY_CACHE_S = 5.0


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid key."""

    key_id: str
    tenant: str
    admin: bool


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str:
    """A public name for a key (safe to log and list): the start of its hash."""
    return key_hash(key)[:16]


class KeyStore:
    """The `api_keys` collection, with a short per-process cache of lookups."""

    def __init__(self, keys: AsyncCollection):
        self.keys = keys
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def create(self, tenant: str, *, name: str = "", admin: bool = False, key: str | None = None) -> tuple[str, dict[str, Any]]:
        """Store a new key (or the given one) for `tenant`; returns the key and its stored record."""
        key = key or new_key()
        record = {
            "_id": key_hash(key),
            "key_id": key_id(key),
            "tenant": tenant,
            "name": name,
            "admin": admin,
            "created_at": utcnow(),
            "revoked_at": None,
        }
        await self.keys.insert_one(record)
        return key, record

    async def ensure(self, key: str, tenant: str, *, name: str, admin: bool) -> None:
        """Create `key` unless it exists (the bootstrap key, on every start); a revoked one stays revoked."""
        try:
            await self.create(tenant, name=name, admin=admin, key=key)
        except DuplicateKeyError:
            pass

    async def revoke(self, key_id_: str, tenant: str | None = None) -> bool:
        query: dict[str, Any] = {"key_id": key_id_, "revoked_at": None}
        if tenant is not None:
            query["tenant"] = tenant
        result = await self.keys.update_one(query, {"$set": {"revoked_at": utcnow()}})
        self._cache.clear()
        return bool(result.modified_count)

    async def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        query = {} if tenant is None else {"tenant": tenant}
        return [d async for d in self.keys.find(query, {"_id": 0}).sort("created_at", 1)]

    async def authenticate(self, key: str) -> Principal | None:
        """The principal for `key`, or None when it is unknown or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = key_hash(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        doc = await self.keys.find_one({"_id": digest})
        principal = None
        if doc is not None and doc.get("revoked_at") is None:
            principal = Principal(key_id=doc["key_id"], tenant=doc["tenant"], admin=bool(doc.get("admin")))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + KEY_CACHE_S, principal)
        return principal


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request carries: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key.strip() if x_api_key else None
