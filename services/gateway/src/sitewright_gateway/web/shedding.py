"""Load shedding: past a number of HTTP requests in progress, a new one gets an immediate 429.

Admission control bounds the work accepted into the pipeline; this bounds the work inside the gateway.
Open-loop clients (many users at once) do not slow down when the gateway does: without a bound, requests
pile up in the event loop and every answer, a GET as much as a POST, waits behind all of them (at twice
Tier A's capacity, p99s of a minute: `bench/README.md`, "Overload"). With one, the requests in progress
finish in time and the rest learn at once to come back after `Retry-After`. Streams, which stay open, and
the probes and metrics, which must answer under load, are never shed.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sitewright_runtime.metrics import HTTP_SHED

EXEMPT = ("/api/jobs/stream", "/healthz", "/readyz", "/metrics")
RETRY_AFTER_S = 1


class Shedding:
    def __init__(self, app: ASGIApp, max_in_flight: int, exempt: tuple[str, ...] = EXEMPT):
        self.app = app
        self.max_in_flight = max_in_flight  # 0: no limit
        self.exempt = exempt
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_in_flight or scope["path"].startswith(self.exempt):
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            HTTP_SHED.inc()
            response = JSONResponse(
                {
                    "detail": f"the gateway is at capacity ({self.in_flight} requests in progress); "
                    f"retry after {RETRY_AFTER_S} s"
                },
                status_code=429,
                headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"},
            )
            return await response(scope, receive, send)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
