"""Load shedding at the gateway's door: past the limit a request gets 429 at once; streams and probes never."""

from __future__ import annotations

import asyncio
import json

from sitewright_gateway.web.shedding import Shedding


class Held:
    """An app whose requests stay in progress until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app, path: str) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_past_the_limit_a_request_is_refused_at_once_and_the_others_finish():
    inner = Held()
    app = Shedding(inner, max_in_flight=2)
    held = [asyncio.create_task(call(app, "/api/jobs/x")) for _ in range(2)]
    await asyncio.sleep(0)
    status, headers, body = await asyncio.wait_for(call(app, "/api/jobs/y"), 1)
    assert status == 429 and headers["retry-after"] == "1"
    assert "at capacity (2 requests in progress)" in json.loads(body)["detail"]
    # Streams and probes are never shed; they do not count either.
    stream = asyncio.create_task(call(app, "/api/jobs/stream"))
    probe = asyncio.create_task(call(app, "/readyz"))
    await asyncio.sleep(0)
    assert not stream.done() and not probe.done() and app.in_flight == 2
    inner.release.set()
    assert [s for s, _, _ in await asyncio.gather(*held, stream, probe)] == [200, 200, 200, 200]
    assert app.in_flight == 0
    assert (await call(app, "/api/jobs/z"))[0] == 200


async def test_zero_turns_it_off():
    inner = Held()
    inner.release.set()
    app = Shedding(inner, max_in_flight=0)
    assert (await call(app, "/api/jobs/x"))[0] == 200
