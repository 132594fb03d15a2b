"""HTTP plumbing: body size limit, clear validation errors, health and metrics routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from sitewright_runtime.worker import metrics_endpoint

router = APIRouter()


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not they declare a length."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body is larger than {self.max_bytes} bytes; send a smaller body"},
            status_code=413,
        )
        await response({"type": "http"}, _no_body, send)


class _TooLarge(Exception):
    pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's per-field errors plus one sentence a person can act on."""
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        errors.append({k: v for k, v in err.items() if k in ("loc", "msg", "type")})
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": errors, "message": f"invalid request: {summary}"}, status_code=422)


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """Ready when MongoDB answers, the publisher is connected and the projector runs."""
    state = request.app.state.gateway
    checks = {"publisher": state.publisher.started, "projector": state.projector.running}
    try:
        await state.client.admin.command("ping")
        checks["mongodb"] = True
    except Exception:
        checks["mongodb"] = False
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


router.add_api_route("/metrics", metrics_endpoint, include_in_schema=False)
