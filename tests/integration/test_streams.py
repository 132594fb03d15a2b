"""Job streams (WebSocket and SSE) against a real gateway, broker and database.

Jobs are driven by publishing the events the workers would publish
(`sitewright_devstack.synthetic.job_story`), so each job has 66 versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import websockets

from sitewright_cli.sse import server_events
from sitewright_contracts import Topics
from sitewright_contracts import events as ev
from sitewright_devstack.synthetic import STORY_VERSIONS, job_story
from sitewright_gateway.main import create_app
from sitewright_runtime.kafka import Publisher
from tests.helpers import AUTH, TEST_API_KEY, eventually
from tests.integration.served import served
from tests.integration.test_gateway_api import gateway_settings

URL = "https://example.com/"
FINAL_VERSION = STORY_VERSIONS + 1
Message = dict[str, Any]


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/jobs/stream"


@contextlib.asynccontextmanager
async def publisher(kafka: str, prefix: str) -> AsyncIterator[Callable[[list[ev.Event]], Awaitable[None]]]:
    pub = Publisher(kafka, "test", Topics(prefix))
    await pub.start()
    try:
        yield pub.publish
    finally:
        await pub.stop()


async def ws_until(ws: Any, done: Callable[[Message], bool], timeout: float = 30) -> list[Message]:
    """Messages received until one satisfies `done` (that one included)."""
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        while True:
            got.append(json.loads(await ws.recv()))
            if done(got[-1]):
                return got


async def sse_until(events: AsyncIterator[Any], done: Callable[[Message], bool], timeout: float = 30) -> list[Message]:
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        async for event in events:
            assert event.event == event.data["type"]
            got.append(event.data)
            if done(got[-1]):
                return got
    raise AssertionError(f"the stream ended after {len(got)} messages")


def ready(m: Message) -> bool:
    return m["type"] == "ready"


def completed(m: Message) -> bool:
    return m.get("status") == "completed"


def jobs_only(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m["type"] == "job"]


async def new_job(api: httpx.AsyncClient, *, recorded: bool = True) -> str:
    """Create a job; with `recorded`, wait until its request is in the audit trail."""
    created = await api.post("/api/jobs", json={"url": URL})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    if recorded:

        async def in_trail() -> bool:
            return bool((await api.get(f"/api/jobs/{job_id}/events")).json())

        await eventually(in_trail, what="job.requested in the audit trail")
    return job_id


async def trail_by_version(api: httpx.AsyncClient, job_id: str) -> dict[int, Message]:
    """The event that made each version of the job, from its audit trail."""
    events = (await api.get(f"/api/jobs/{job_id}/events")).json()
    made: dict[int, Message] = {}
    for e in sorted(events, key=lambda e: (e["version"], e["offset"])):
        made.setdefault(e["version"], e)
    return made


async def test_a_reconnect_with_the_last_version_resumes_without_gap_or_duplicate(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with (
        served(settings) as base,
        publisher(kafka_bootstrap, settings.topic_prefix) as publish,
        httpx.AsyncClient(base_url=base, headers=AUTH) as api,
    ):
        job_id = await new_job(api, recorded=False)
        story = job_story(job_id, URL)

        ws = await websockets.connect(ws_url(base), additional_headers=AUTH)
        await ws.send(json.dumps({"type": "subscribe", "jobs": [job_id]}))
        first = await ws_until(ws, ready)
        assert jobs_only(first)[0]["version"] == 1 and jobs_only(first)[0]["status"] == "pending"
        await publish(story[:30])
        first += await ws_until(ws, lambda m: m.get("version", 0) >= 12)
        ws.transport.abort()  # killed mid-job: no close handshake
        await publish(story[30:50])  # missed while disconnected

        seen = jobs_only(first)
        ws = await websockets.connect(ws_url(base), additional_headers=AUTH)
        await ws.send(json.dumps({"type": "subscribe", "jobs": [job_id], "since": {job_id: seen[-1]["version"]}}))
        await publish(story[50:])
        second = await ws_until(ws, completed)
        await ws.close()

        received = seen + jobs_only(second)
        assert [m["version"] for m in received] == list(range(1, FINAL_VERSION + 1)), "a version missing or twice"
        made = await trail_by_version(api, job_id)
        assert sorted(made) == list(range(1, FINAL_VERSION + 1))
        for m in received[1:]:  # the first came from the job document, before its event was recorded
            assert (m["event_id"], m["event_type"]) == (made[m["version"]]["event_id"], made[m["version"]]["type"])
        job = (await api.get(f"/api/jobs/{job_id}")).json()
        assert (received[-1]["status"], received[-1]["progress"], received[-1]["version"]) == (
            "completed",
            100,
            job["version"],
        )
        progress = [m["progress"] for m in received]
        assert progress == sorted(progress), "progress went backwards"


async def test_websocket_and_sse_carry_the_same_sequence_and_last_event_id_resumes_sse(
    kafka_bootstrap, mongo_url, unique
):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with (
        served(settings) as base,
        publisher(kafka_bootstrap, settings.topic_prefix) as publish,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as api,
    ):
        job_id = await new_job(api)
        ws = await websockets.connect(ws_url(base), additional_headers=AUTH)
        await ws.send(json.dumps({"type": "subscribe", "all": True}))  # every job of the tenant
        over_ws = await ws_until(ws, ready)
        async with api.stream("GET", "/api/jobs/stream", params={"jobs": job_id}) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            events = server_events(response)
            over_sse = await sse_until(events, ready)
            await publish(job_story(job_id, URL))
            over_sse += await sse_until(events, completed)
        over_ws += await ws_until(ws, completed)
        await ws.close()

        assert jobs_only(over_ws) == jobs_only(over_sse)
        assert [m["version"] for m in jobs_only(over_sse)] == list(range(1, FINAL_VERSION + 1))

        # Resume SSE the way a browser's EventSource does: the id of the last event seen.
        async with api.stream(
            "GET", "/api/jobs/stream", params={"jobs": job_id}, headers={"Last-Event-ID": f"{job_id}:40"}
        ) as response:
            resumed = await sse_until(server_events(response), ready)
        assert jobs_only(resumed) == jobs_only(over_sse)[40:]


async def test_two_hundred_concurrent_clients_each_receive_every_update(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, stream_max_per_key=300)
    async with (
        served(settings) as base,
        publisher(kafka_bootstrap, settings.topic_prefix) as publish,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30, limits=httpx.Limits(max_connections=100)) as api,
    ):
        job_id = await new_job(api)

        async def ws_client(subscription: Message) -> list[Message]:
            async with websockets.connect(ws_url(base), additional_headers=AUTH) as ws:
                await ws.send(json.dumps({"type": "subscribe", **subscription}))
                got = await ws_until(ws, ready, timeout=60)
                is_ready()
                return got + await ws_until(ws, completed, timeout=90)

        async def sse_client() -> list[Message]:
            async with api.stream("GET", "/api/jobs/stream", params={"jobs": job_id}) as response:
                events = server_events(response)
                got = await sse_until(events, ready, timeout=60)
                is_ready()
                return got + await sse_until(events, completed, timeout=90)

        waiting = 200
        subscribed = asyncio.Event()

        def is_ready() -> None:
            nonlocal waiting
            waiting -= 1
            if not waiting:
                subscribed.set()

        clients = [ws_client({"jobs": [job_id]}) for _ in range(75)] + [ws_client({"all": True}) for _ in range(75)]
        clients += [sse_client() for _ in range(50)]
        tasks = [asyncio.create_task(c) for c in clients]
        await asyncio.wait_for(subscribed.wait(), 60)
        await publish(job_story(job_id, URL))
        results = await asyncio.gather(*tasks)

    expected = list(range(1, FINAL_VERSION + 1))
    for i, messages in enumerate(results):
        assert [m["version"] for m in jobs_only(messages)] == expected, f"client {i} missed or repeated an update"
    assert all(jobs_only(r) == jobs_only(results[0]) for r in results)


async def test_refusals_say_why_limits_hold_and_idle_streams_get_heartbeats(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, stream_max_per_key=2, stream_heartbeat_s=0.2)
    async with served(settings) as base, httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as api:
        job_id = await new_job(api, recorded=False)

        async def refused(headers: dict[str, str] | None, first: Message | None = None) -> tuple[Message, int | None]:
            async with websockets.connect(ws_url(base), additional_headers=headers) as ws:
                if first is not None:
                    await ws.send(json.dumps(first))
                error = json.loads(await asyncio.wait_for(ws.recv(), 15))
                with contextlib.suppress(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 15)
                return error, ws.close_code

        error, code = await refused({"Authorization": "Bearer sw_not-a-key"})
        assert (error["type"], error["code"], code) == (
            "error",
            "unauthorized",
            4401,
        ) and "unknown or revoked" in error["message"]
        error, code = await refused(None, {"type": "subscribe", "all": True})
        assert (error["code"], code) == ("unauthorized", 4401) and '"type": "auth"' in error["message"]
        error, code = await refused({"Origin": "https://evil.example"})
        assert (error["code"], code) == ("origin", 4403)
        error, code = await refused(AUTH, {"type": "subscribe", "jobs": "not-a-list"})
        assert (error["code"], code) == ("bad_message", 1008) and "jobs" in error["message"]

        # A browser authenticates with its first message; an unknown job is named, the rest followed.
        async with (
            websockets.connect(ws_url(base)) as browser,
            websockets.connect(ws_url(base), additional_headers=AUTH),
        ):
            await browser.send(json.dumps({"type": "auth", "key": TEST_API_KEY}))
            await browser.send(json.dumps({"type": "subscribe", "jobs": [job_id, "no-such-job"]}))
            got = await ws_until(browser, ready)
            assert [m["type"] for m in got] == ["job", "error", "ready"] and "no-such-job" in got[1]["message"]
            beats = await ws_until(browser, lambda m: m["type"] == "heartbeat", timeout=5)
            assert beats[-1]["at"].endswith("Z")

            # Two streams are open for this key: a third is refused on both transports.
            error, code = await refused(AUTH)
            assert (error["code"], code) == ("too_many_streams", 4429)
            r = await api.get("/api/jobs/stream", params={"all": "true"})
            assert r.status_code == 429 and r.headers["retry-after"] and "job streams open" in r.json()["detail"]

        async def freed() -> bool:
            async with api.stream("GET", "/api/jobs/stream", params={"jobs": job_id}) as response:
                return response.status_code == 200

        await eventually(freed, what="closed streams to stop counting against the key")

        r = await api.get("/api/jobs/stream", params={"jobs": "no-such-job"})
        assert r.status_code == 404 and "no-such-job" in r.json()["detail"]
        r = await api.get("/api/jobs/stream", params={"since": "bad"})
        assert r.status_code == 422 and "<job_id>:<version>" in r.json()["detail"]
        r = await api.get("/api/jobs/stream")
        assert r.status_code == 422 and "?all=true" in r.json()["detail"]
        for last in (",", f"{job_id}:1,another-job:2"):  # no id, or two: the header names one event
            r = await api.get("/api/jobs/stream", params={"jobs": job_id}, headers={"Last-Event-ID": last})
            assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"]
        r = await api.get("/api/jobs/stream", params={"all": "true"}, headers={"Authorization": ""})
        assert r.status_code == 401


async def test_the_feed_closes_when_nobody_follows_and_a_later_stream_misses_nothing(
    kafka_bootstrap, mongo_url, unique
):
    """The hub's change stream is open only while someone follows: closed when idle, reopened by the next
    subscription before it reads anything, so that stream still gets every version in order."""
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, stream_feed_idle_s=0.5)
    app = create_app(settings)
    async with (
        served(settings, app=app) as base,
        publisher(kafka_bootstrap, settings.topic_prefix) as publish,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as api,
    ):
        hub = app.state.gateway.hub
        assert not hub.following, "no stream connection yet, so no change stream"
        job_id = await new_job(api)
        story = job_story(job_id, URL)
        async with api.stream("GET", "/api/jobs/stream", params={"jobs": job_id}) as response:
            assert hub.following
            first = await sse_until(server_events(response), ready)

        async def closed() -> bool:
            return not hub.following

        await eventually(closed, timeout=10, what="the change stream to close")

        await publish(story[:20])  # while nobody follows
        async with api.stream(
            "GET", "/api/jobs/stream", params={"jobs": job_id}, headers={"Last-Event-ID": f"{job_id}:1"}
        ) as response:
            events = server_events(response)
            second = await sse_until(events, ready)
            await publish(story[20:])
            second += await sse_until(events, completed)
        received = jobs_only(first) + jobs_only(second)
        assert [m["version"] for m in received] == list(range(1, FINAL_VERSION + 1)), "a version missing or twice"


async def test_a_client_sending_faster_than_its_limit_is_closed_with_4429(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, rate_stream_msgs_per_s=1, rate_stream_burst=3)
    async with served(settings) as base, httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as api:
        job_id = await new_job(api, recorded=False)
        received: list[Message] = []
        async with websockets.connect(ws_url(base), additional_headers=AUTH) as ws:
            for _ in range(10):
                await ws.send(json.dumps({"type": "subscribe", "jobs": [job_id]}))
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
        errors = [m for m in received if m["type"] == "error"]
        assert ws.close_code == 4429 and errors[-1]["code"] == "too_many_messages"
        assert "stream messages" in errors[-1]["message"]


async def test_a_revoked_keys_open_stream_closes_within_the_revocation_delay(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with served(settings) as base, httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as api:
        made = (await api.post("/api/admin/keys", json={"tenant": "default", "name": "soon revoked"})).json()
        headers = {"Authorization": f"Bearer {made['key']}"}
        async with websockets.connect(ws_url(base), additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "subscribe", "all": True}))
            await ws_until(ws, lambda m: m["type"] == "ready")
            assert (await api.delete(f"/api/admin/keys/{made['key_id']}")).status_code == 204
            revoked_at = asyncio.get_running_loop().time()
            received: list[Message] = []
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
            closed_after = asyncio.get_running_loop().time() - revoked_at
        assert ws.close_code == 4401 and any(m.get("code") == "key_revoked" for m in received)
        assert closed_after < 5.0, closed_after
