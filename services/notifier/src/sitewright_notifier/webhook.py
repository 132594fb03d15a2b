"""Webhook delivery following the Standard Webhooks spec (webhook-id, -timestamp, -signature).

One POST per try. The URL passes the same SSRF guard as the crawler and the
connection goes to the address the guard checked; redirects are not
followed (a 3xx is a failed try), and a 410 disables the endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import Sequence

import httpx

from sitewright_runtime.netguard import AddressGuard, BlockedAddress
from sitewright_runtime.webhook_endpoints import WebhookEndpoints, active_secrets

from .channels import Notice, SendResult, http_verdict, retry_after

# A host's other addresses are tried when one refuses the connection (an unreachable IPv6 address).
MAX_ADDRESSES_TRIED = 3


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, keyed by the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers; one space-separated signature per active secret (rotation)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }


def pinned(
    url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """(URL, headers, extensions) connecting to the checked `address` rather than a second DNS answer.

    The Host header keeps the real name, and for https so do SNI and the
    certificate check (the crawler connects the same way).
    """
    target = httpx.URL(url)
    extensions = {"sni_hostname": target.raw_host.decode("ascii")} if target.scheme == "https" else {}
    return target.copy_with(host=str(address)), {"Host": target.netloc.decode("ascii")}, extensions


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        client: httpx.AsyncClient,
        guard: AddressGuard,
        endpoints: WebhookEndpoints,
        *,
        timeout_s: float,
        max_retry_after_s: float,
    ):
        self.client = client
        self.guard = guard
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self.max_retry_after_s = max_retry_after_s

    async def send(self, notice: Notice) -> SendResult:
        endpoint = await self.endpoints.ensure(notice.tenant, notice.target)
        if endpoint["disabled"]:
            return SendResult(
                "failed",
                error=f"the endpoint is disabled ({endpoint['disabled_reason']}); "
                "register it again with POST /api/webhooks/endpoints to re-enable it",
            )
        try:
            addresses = await self.guard.resolve(notice.target)
        except BlockedAddress as exc:
            # A name that does not resolve now may later; a private address stays private.
            return SendResult("retry" if exc.code == "dns_failure" else "failed", error=f"{exc.code}: {exc.message}")
        body = json.dumps(notice.payload, separators=(",", ":")).encode()
        headers = signed_headers(active_secrets(endpoint), notice.key, int(time.time()), body)
        refused: Exception | None = None
        for address in addresses[:MAX_ADDRESSES_TRIED]:
            url, host, extensions = pinned(notice.target, address)
            try:
                async with asyncio.timeout(self.timeout_s):
                    # Streamed and never read: a receiver's answer body is not ours to download.
                    async with self.client.stream(
                        "POST", url, content=body, headers=headers | host, extensions=extensions, follow_redirects=False
                    ) as response:
                        status = response.status_code
                        wait = retry_after(response.headers.get("retry-after"), self.max_retry_after_s)
            except httpx.ConnectError as exc:
                refused = exc
                continue
            except (TimeoutError, httpx.TimeoutException):
                return SendResult("retry", error=f"the endpoint did not answer within {self.timeout_s:g} s")
            except httpx.HTTPError as exc:
                return SendResult("retry", error=f"{type(exc).__name__}: {exc}")
            return await self._verdict(endpoint["_id"], status, wait)
        return SendResult("retry", error=f"could not connect to the endpoint: {refused}")

    async def _verdict(self, endpoint: str, status: int, wait: float | None) -> SendResult:
        verdict = http_verdict(status)
        if verdict == "sent":
            return SendResult("sent", status)
        if status == 410:
            await self.endpoints.disable(endpoint, "the endpoint answered 410 Gone")
            return SendResult("failed", status, "HTTP 410: the endpoint is gone; it is disabled until registered again")
        if 300 <= status < 400:
            return SendResult(
                "retry", status, f"HTTP {status}: redirects are not followed; use the final URL as the target"
            )
        return SendResult("retry", status, f"HTTP {status}", retry_after_s=wait)
