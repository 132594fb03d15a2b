"""HTTP plumbing: body size limit, clear validation errors, health and metrics routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from sitewright_runtime.worker import metrics_endpoint

router = APIRouter()


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not they declare a length.

    A declared length is checked before the app runs. A chunked body is
    counted as it is read; going over raises `BodyTooLarge`, an HTTPException,
    because FastAPI turns any other error raised while it reads a body into
    a 400 ("error parsing the body") and the client would not learn why.
    """

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
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except BodyTooLarge:  # read outside a FastAPI route (no exception middleware turned it into a 413)
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse({"detail": _too_large(self.max_bytes)}, status_code=413)
        await response({"type": "http"}, _no_body, send)


def _too_large(max_bytes: int) -> str:
    return f"request body is larger than {max_bytes} bytes; send a smaller body"


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int):
        super().__init__(413, _too_large(max_bytes))


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
