"""Job streams: WS /api/jobs/stream and GET /api/jobs/stream (SSE), one connection for many jobs.

Both transports carry the same messages (the contract is in the README's
"Job streams" section); they only translate between the wire and the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Header, HTTPException, Query, WebSocket, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from sitewright_runtime.logs import get_logger

from ..state import GatewayState
from ..streams import hub as h
from ..streams import messages as m
from ..streams.connection import Connection
from ..streams.hub import BadSubscription, Hub, TooManyStreams
from ..streams.messages import Update, control, rfc3339
from ..web.auth import Principal, key_from_headers
from ..web.deps import Caller, State
from ..web.errors import summary
from ..web.ratelimit import RateLimited, StreamLimiter

log = get_logger(__name__)
router = APIRouter(prefix="/api")
AUTH_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 1.0
MAX_ID_LENGTH = 64


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    jobs: list[Annotated[str, Field(max_length=MAX_ID_LENGTH)]] = Field(
        default_factory=list, max_length=h.MAX_JOBS_PER_CONNECTION
    )
    all: bool = False
    since: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict, max_length=h.MAX_JOBS_PER_CONNECTION)


def _encode(item: Update | dict[str, Any]) -> str:
    return item.text if isinstance(item, Update) else json.dumps(item, separators=(",", ":"))


def _sse(item: Update | dict[str, Any]) -> bytes:
    if isinstance(item, Update):
        return item.sse
    return f"event: {item['type']}\ndata: {_encode(item)}\n\n".encode()


def _heartbeat() -> dict[str, Any]:
    return control("heartbeat", at=rfc3339())


def _error(code: str, message: str) -> dict[str, Any]:
    return control("error", code=code, message=message)


# -- WebSocket --------------------------------------------------------------------------------------


async def until_first(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run `coros` until the first ends (sending, reading, or the hub closing the stream), then stop the rest."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@router.websocket("/jobs/stream")
async def websocket_stream(websocket: WebSocket) -> None:
    state: GatewayState = websocket.app.state.gateway
    await websocket.accept()
    if not _origin_allowed(websocket, state.settings.stream_allowed_origins):
        return await _refuse(
            websocket, m.CLOSE_ORIGIN, "origin", "this origin may not open job streams; use the gateway's own origin"
        )
    principal = await _authenticate(websocket, state)
    if principal is None:
        return
    try:
        conn = state.hub.open(principal)
    except TooManyStreams as exc:
        return await _refuse(websocket, m.CLOSE_TOO_MANY, "too_many_streams", str(exc))
    try:
        await until_first(
            _pump_websocket(websocket, conn, state.settings.stream_heartbeat_s),
            _read_websocket(websocket, conn, state.hub, StreamLimiter.from_settings(state.settings)),
            conn.done.wait(),
        )
    finally:
        state.hub.close(conn)
    if conn.closed is not None:
        close_code, code, message = conn.closed
        await _refuse(websocket, close_code, code, message)


async def _authenticate(websocket: WebSocket, state: GatewayState) -> Principal | None:
    """From the handshake's headers, or (browsers cannot set them) a first `auth` message."""
    key = key_from_headers(websocket.headers.get("authorization"), websocket.headers.get("x-api-key"))
    if not key:
        try:
            async with asyncio.timeout(AUTH_TIMEOUT_S):
                first = json.loads(await websocket.receive_text())
            key = first.get("key") if isinstance(first, dict) and first.get("type") == "auth" else None
        except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
            key = None
        if not isinstance(key, str) or not key:
            await _refuse(
                websocket,
                m.CLOSE_UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <key>` on the handshake, "
                f'or {{"type": "auth", "key": ...}} first, within {AUTH_TIMEOUT_S:g} s',
            )
            return None
    principal = await state.keys.authenticate(key)
    if principal is None:
        await _refuse(
            websocket,
            m.CLOSE_UNAUTHORIZED,
            "unauthorized",
            "this API key is unknown or revoked; ask an admin for a valid one",
        )
    return principal


def _origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """Browsers send Origin: allow the gateway's own and the configured ones; other clients send none."""
    origin = websocket.headers.get("origin")
    if not origin:
        return True
    return origin.rstrip("/") in {o.rstrip("/") for o in allowed} or urlsplit(origin).netloc == websocket.headers.get(
        "host"
    )


async def _pump_websocket(websocket: WebSocket, conn: Connection, heartbeat_s: float) -> None:
    while conn.closed is None:
        items = await conn.take(heartbeat_s)
        if not items and conn.closed is None:
            items = [_heartbeat()]
        for item in items:
            await websocket.send_text(_encode(item))


async def _read_websocket(websocket: WebSocket, conn: Connection, hub: Hub, limiter: StreamLimiter) -> None:
    """Subscriptions from the client; a malformed one closes the stream with 1008 and says what is wrong,
    and a client sending faster than `SITEWRIGHT_RATE_STREAM_MSGS_PER_S` is closed with 4429."""
    while True:
        try:
            raw = await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return
        try:
            limiter.check()
        except RateLimited as exc:
            conn.drop(m.CLOSE_TOO_MANY, "too_many_messages", exc.message)
            return
        try:
            message = Subscribe.model_validate_json(raw)
            if message.type == "subscribe":
                if not (message.jobs or message.all or message.since):
                    raise BadSubscription("say what to follow: `jobs` (a list of ids), `all: true`, or `since`")
                unknown = await hub.subscribe(conn, message.jobs, all_=message.all, since=message.since)
                if unknown:
                    conn.put(
                        _error(
                            "unknown_job", f"no job with id {', '.join(unknown)} for this API key; it is not followed"
                        )
                    )
                conn.put(control("ready"))
            elif message.type == "unsubscribe":
                hub.unsubscribe(conn, message.jobs, all_=message.all)
            elif message.type != "auth":  # a repeated auth message is harmless
                raise BadSubscription(f"unknown message type {message.type!r}; send `subscribe` or `unsubscribe`")
        except (ValidationError, BadSubscription) as exc:
            detail = summary(exc.errors()) if isinstance(exc, ValidationError) else str(exc)
            conn.drop(m.CLOSE_BAD_MESSAGE, "bad_message", f"invalid message: {detail}")
            return


async def _refuse(websocket: WebSocket, close_code: int, code: str, message: str) -> None:
    """Say why, then close; a client that does not read is not waited for."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.send_text(_encode(_error(code, message)))
            await websocket.close(close_code, reason=code)


# -- Server-sent events -----------------------------------------------------------------------------


@router.get("/jobs/stream", response_class=Response, responses={200: {"content": {"text/event-stream": {}}}})
async def sse_stream(
    state: State,
    caller: Caller,
    jobs: Annotated[str | None, Query(description="Job ids to follow, comma-separated.")] = None,
    all: Annotated[bool, Query(description="Follow every job of the tenant, including later ones.")] = False,
    since: Annotated[str | None, Query(description="Resume: `id1:3,id2:5`, the last version seen of each job.")] = None,
    last_event_id: Annotated[str | None, Header(description="`<job_id>:<version>`, resumes that job.")] = None,
) -> Response:
    """Server-sent events of the caller's jobs: `event: job|ready|heartbeat|error`, `data:` a JSON message."""
    job_ids = [j for j in (jobs or "").split(",") if j.strip()]
    resume = _parse_since(since, "since")
    if last_event_id:
        last = _parse_since(last_event_id, "Last-Event-ID")
        if len(last) != 1:
            raise HTTPException(
                400, "Last-Event-ID must be one `<job_id>:<version>`, the id of the last event received"
            )
        [(job_id, version)] = last.items()
        resume[job_id] = max(version, resume.get(job_id, 0))
    if not (job_ids or all or resume):
        raise HTTPException(422, "say which jobs to follow: `?jobs=id1,id2`, `?all=true`, or `?since=id1:3`")
    if any(len(j) > MAX_ID_LENGTH for j in job_ids):
        raise HTTPException(422, f"a job id is at most {MAX_ID_LENGTH} characters")
    try:
        conn = state.hub.open(caller)
    except TooManyStreams as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "5"}) from None
    try:
        unknown = await state.hub.subscribe(conn, job_ids, all_=all, since=resume)
        if unknown:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {', '.join(unknown)} for this API key")
    except BadSubscription as exc:
        state.hub.close(conn)
        raise HTTPException(422, str(exc)) from None
    except BaseException:
        state.hub.close(conn)
        raise
    conn.put(control("ready"))
    return EventStream(conn, state.hub, state.settings.stream_heartbeat_s)


def _parse_since(value: str | None, name: str) -> dict[str, int]:
    resume: dict[str, int] = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        job_id, sep, version = part.strip().rpartition(":")
        if not sep or not job_id or not version.isdigit() or len(job_id) > MAX_ID_LENGTH:
            raise HTTPException(
                422, f"{name} must look like `<job_id>:<version>` (comma-separated for several); got {part!r}"
            )
        resume[job_id] = int(version)
    return resume


class EventStream(Response):
    """The SSE body: the connection's outbox as frames, heartbeats when idle, an error frame when dropped."""

    media_type = "text/event-stream"

    def __init__(self, conn: Connection, hub: Hub, heartbeat_s: float):
        # No Response.__init__: it would declare `content-length: 0` for the empty initial body.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.conn, self.hub, self.heartbeat_s = conn, hub, heartbeat_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self.conn
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await until_first(self._pump(send), _disconnected(receive), conn.done.wait())
        finally:
            self.hub.close(conn)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if conn.closed is not None:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": _sse(_error(conn.closed[1], conn.closed[2])),
                            "more_body": True,
                        }
                    )
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send) -> None:
        while self.conn.closed is None:
            items = await self.conn.take(self.heartbeat_s)
            if not items and self.conn.closed is None:
                items = [_heartbeat()]
            # One write for everything queued: fewer syscalls when a client follows busy jobs.
            await send({"type": "http.response.body", "body": b"".join(_sse(i) for i in items), "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
