"""Webhook delivery following the Standard Webhooks spec (webhook-id, -timestamp, -signature)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sitewright_runtime.netguard import AddressGuard, BlockedAddress


@dataclass(frozen=True)
class Delivered:
    ok: bool
    status_code: int | None = None
    error: str | None = None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, keyed by the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def deliver(
    client: httpx.AsyncClient, guard: AddressGuard, url: str, msg_id: str, payload: dict[str, Any], *,
    secret: str | None, attempts: int, backoff_s: float = 0.5,
) -> Delivered:
    """POST the payload; retry 5xx, 429 and network errors. A 3xx is a failure (redirects are not followed)."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    last = Delivered(False, error="not attempted")
    for attempt in range(1, attempts + 1):
        try:
            await guard.resolve(url)
        except BlockedAddress as exc:
            return Delivered(False, error=f"{exc.code}: {exc.message}")
        ts = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts)}
        if secret:
            headers["webhook-signature"] = sign(secret, msg_id, ts, body)
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            last = Delivered(False, error=f"{type(exc).__name__}: {exc}")
        else:
            if 200 <= response.status_code < 300:
                return Delivered(True, response.status_code)
            last = Delivered(False, response.status_code, f"HTTP {response.status_code}")
            if response.status_code < 500 and response.status_code != 429:
                return last  # the receiver refused it; sending again will not help
        if attempt < attempts:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    return last
