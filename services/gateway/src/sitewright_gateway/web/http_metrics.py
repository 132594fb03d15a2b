"""HTTP request metrics: count, duration and in-progress per method and route template.

The route label is the matched route's template (`/api/jobs/{job_id}`), never the raw
path, so the number of series stays bounded whatever clients request; a request no
route matched is labelled `unmatched`.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sitewright_runtime.metrics import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS

UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request (set in the scope by the router)."""
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED


class HttpMetrics:
    """ASGI middleware recording `sitewright_http_*` for every HTTP request (not WebSockets)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method = scope["method"]
        status = 500  # what the client gets if the app raises before answering
        in_progress = HTTP_IN_PROGRESS.labels(method)
        in_progress.inc()
        started = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            in_progress.dec()
            route = route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
