"""API keys: who is calling, and which tenant's jobs they may see.

A key is `sw_` plus 32 random bytes, shown once when it is created. Only its
SHA-256 is stored (a key is high-entropy, so a slow hash would buy nothing and
cost a hash per request). Keys are cached for a few seconds per gateway
process, so a revoked key stops working on every instance within
`KEY_CACHE_S`; the instance that revokes it forgets it at once.

Lookups go by the SHA-256 of the presented key, so neither the database
index nor the cache compares secret material: timing reveals at most
something about a hash, which does not help to find a key. Unknown keys are
cached apart from known ones, so a client spraying random keys can fill and
flush only that cache, never push valid keys out (and so not turn each valid
request into a database read). The key is never logged nor echoed in an error.
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
MAX_KEY_LENGTH = 200
_CACHE_SIZE = 10_000


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
        self._known: dict[str, tuple[float, Principal]] = {}
        self._unknown: dict[str, float] = {}

    async def create(
        self, tenant: str, *, name: str = "", admin: bool = False, key: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Store a new key (or the given one) for `tenant`; returns the key and its stored record."""
        key = key or new_key()
        record: dict[str, Any] = {
            "_id": key_hash(key),
            "key_id": key_id(key),
            "tenant": tenant,
            "name": name,
            "admin": admin,
            "created_at": utcnow(),
            "revoked_at": None,
        }
        await self.keys.insert_one(record)
        self._unknown.pop(record["_id"], None)
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
        self._known.clear()
        return bool(result.modified_count)

    async def revoked(self, key_ids: set[str]) -> set[str]:
        """Which of `key_ids` are revoked (or gone): the hub closes their open streams."""
        found = {d["key_id"]: d.get("revoked_at") async for d in self.keys.find({"key_id": {"$in": sorted(key_ids)}})}
        return {k for k in key_ids if found.get(k, True) is not None}

    async def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        query = {} if tenant is None else {"tenant": tenant}
        return [d async for d in self.keys.find(query, {"_id": 0}).sort("created_at", 1)]

    async def authenticate(self, key: str) -> Principal | None:
        """The principal for `key`, or None when it is unknown or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_LENGTH:
            return None
        digest = key_hash(key)
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and known[0] > now:
            return known[1]
        if self._unknown.get(digest, 0.0) > now:
            return None
        doc = await self.keys.find_one({"_id": digest})
        if doc is None or doc.get("revoked_at") is not None:
            if len(self._unknown) >= _CACHE_SIZE:
                self._unknown.clear()
            self._unknown[digest] = now + KEY_CACHE_S
            self._known.pop(digest, None)
            return None
        principal = Principal(key_id=doc["key_id"], tenant=doc["tenant"], admin=bool(doc.get("admin")))
        if len(self._known) >= _CACHE_SIZE:
            self._known.clear()
        self._known[digest] = (now + KEY_CACHE_S, principal)
        return principal


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request carries: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key.strip() if x_api_key else None
