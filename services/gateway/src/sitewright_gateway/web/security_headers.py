"""Security headers on every HTTP answer: a strict CSP, no sniffing, no framing, no referrer.

The strict policy suits the dashboard (its scripts and styles are files
served by the gateway itself) and costs nothing on JSON. A route that sets
its own `Content-Security-Policy` (the result page at /r/{token}) keeps it.

/docs and /redoc are FastAPI's pages, which load Swagger UI and ReDoc from
a CDN and start them with an inline script; they get their own policy that
allows that CDN and exactly those inline scripts (by their SHA-256, taken
from the page as it is sent), and nothing else: no `'unsafe-inline'`
scripts anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Swagger UI and ReDoc as FastAPI serves them: bundles from jsDelivr, ReDoc's fonts from Google,
# ReDoc's search worker from a blob:, FastAPI's logo as the favicon; styles injected at run time.
_CDN = "https://cdn.jsdelivr.net"
DOCS_CSP_TEMPLATE = (
    "default-src 'none'; script-src 'self' "
    + _CDN
    + " {hashes}; style-src 'self' 'unsafe-inline' "
    + _CDN
    + " https://fonts.googleapis.com; font-src https://fonts.gstatic.com; img-src 'self' data: "
    "https://fastapi.tiangolo.com https://cdn.redoc.ly; worker-src blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_BASE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def docs_csp(html: bytes) -> str:
    """The docs policy allowing exactly the inline scripts in `html`."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
        for m in _INLINE_SCRIPT.finditer(html)
    )
    return DOCS_CSP_TEMPLATE.format(hashes=hashes)


class SecurityHeaders:
    """Pure ASGI middleware (no buffering except of the two small docs pages)."""

    def __init__(self, app: ASGIApp, *, https: bool, docs_paths: tuple[str, ...] = ("/docs", "/redoc")):
        self.app = app
        self.https = https
        self.docs_paths = frozenset(p for p in docs_paths if p)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] in self.docs_paths:
            return await self._docs(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add(MutableHeaders(scope=message), STRICT_CSP)
            await send(message)

        await self.app(scope, receive, with_headers)

    def _add(self, headers: MutableHeaders, csp: str) -> None:
        for name, value in _BASE_HEADERS:
            headers.setdefault(name.decode(), value.decode())
        headers.setdefault("content-security-policy", csp)
        if self.https:
            headers.setdefault("strict-transport-security", HSTS)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body = bytearray()

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    assert start is not None
                    headers = MutableHeaders(scope=start)
                    self._add(headers, docs_csp(bytes(body)))
                    await send(start)
                    await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, buffered)
