"""The request body limit: bodies over the configured size get a 413 that says so."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not they declare a length.

    A declared length is checked before the app runs. A chunked body is
    counted as it is read; going over raises `BodyTooLarge`, an HTTPException,
    because FastAPI turns any other error raised while it reads a body into
    a 400 ("error parsing the body") and the client would not learn why.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None):
        self.app = app
        self.default_bytes = max_bytes
        self.larger = larger or {}  # paths whose bodies may be larger (a bulk submission)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        max_bytes = self.larger.get(scope["path"], self.default_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return await self._refuse(send, max_bytes)
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise BodyTooLarge(max_bytes)
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
            await self._refuse(send, max_bytes)

    async def _refuse(self, send: Send, max_bytes: int) -> None:
        response = JSONResponse({"detail": _too_large(max_bytes)}, status_code=413)
        await response({"type": "http"}, _no_body, send)


def _too_large(max_bytes: int) -> str:
    return f"request body is larger than {max_bytes} bytes; send a smaller body"


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int):
        super().__init__(413, _too_large(max_bytes))


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
