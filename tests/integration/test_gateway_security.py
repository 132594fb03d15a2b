"""Gateway security against a real broker and database: tenant isolation on every route, keys, limits.

`CASES` says, for each /api route, how tenant A tries to reach tenant B's
things and what it must get. The test walks `app.routes`, so a route added
later without a case fails here by name until someone writes one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import BaseRoute, WebSocketRoute

from sitewright_contracts import encode
from sitewright_contracts import events as ev
from sitewright_contracts.events import utcnow
from sitewright_contracts.models import ErrorInfo
from sitewright_contracts.topics import H_DLQ_ATTEMPTS, H_DLQ_ERROR, H_DLQ_REASON, H_DLQ_SOURCE_TOPIC
from sitewright_gateway.dead_letters import entry_document
from sitewright_gateway.main import create_app
from tests.helpers import AUTH, TEST_API_KEY, eventually, service_logging
from tests.integration.test_gateway_api import gateway, gateway_settings

JOB = {"url": "https://example.com/"}
B_DEAD_LETTER = "b0dead0letter0of0tenant0b"


@dataclass
class World:
    """Two tenants with a job each, an admin, and a client that sends no key unless told."""

    api: httpx.AsyncClient
    app: object
    app_routes: list[BaseRoute]
    admin: dict[str, str]
    a: dict[str, str]
    b: dict[str, str]
    a_job: str
    b_job: str
    keys: dict[str, str]  # tenant -> key, for the tests that must not find them in logs


def _key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
async def world(kafka_bootstrap, mongo_url) -> AsyncIterator[World]:
    import uuid

    unique = uuid.uuid4().hex[:10]
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, rate_jobs_per_s=1000, rate_jobs_burst=1000)
    app = create_app(settings)
    async with gateway(settings, headers={}, app=app) as api:
        keys = {}
        for tenant in ("alpha", "beta"):
            made = await api.post("/api/admin/keys", headers=AUTH, json={"tenant": tenant, "name": "isolation"})
            assert made.status_code == 201, made.text
            keys[tenant] = made.json()["key"]
        a, b = _key_headers(keys["alpha"]), _key_headers(keys["beta"])
        a_job = (await api.post("/api/jobs", headers=a, json=JOB)).json()["id"]
        b_job = (await api.post("/api/jobs", headers=b, json=JOB)).json()["id"]
        # B's job has a result, so a route that forgot the tenant would have something to leak.
        state = app.state.gateway
        await state.store.results.insert_one(
            {
                "_id": b_job,
                "tenant": "beta",
                "meta": {"title": "B secret", "description": "d"},
                "content": [],
                "faq": [],
                "schema": {},
            }
        )
        # ... and a dead letter, as the DLQ reader stores one.
        # The document the DLQ reader stores for it (the original message with the DLQ headers), so that the
        # owner's replay can go through whatever state B's job is in when the case runs.
        failed = ev.CrawlFailed(
            job_id=b_job,
            tenant="beta",
            producer="crawler",
            data=ev.StageFailedData(error=ErrorInfo(code="unreachable", message="B secret")),
        )
        key, value, headers = encode(failed)
        headers += [
            (H_DLQ_SOURCE_TOPIC, settings.topics.events.encode()),
            (H_DLQ_REASON, b"handler_failed"),
            (H_DLQ_ERROR, b"B secret"),
            (H_DLQ_ATTEMPTS, b"3"),
        ]
        record = ConsumerRecord(settings.topics.dlq, 0, 1, 0, 0, key, value, None, len(key), len(value), headers)
        await state.store.dlq.insert_one(
            entry_document(record)
            | {"_id": B_DEAD_LETTER, "groups": ["crawler"], "created_at": utcnow(), "replays": []}
        )

        async def b_events_projected():
            return (await api.get(f"/api/jobs/{b_job}/events", headers=b)).json()

        await eventually(b_events_projected, what="B's job.requested in its audit trail")
        yield World(api, app, list(app.routes), AUTH, a, b, a_job, b_job, keys)


# --- what each route must do --------------------------------------------------------------------

Case = Callable[[World, str, str], Awaitable[None]]


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _owned_by_b(value: str | None = None, **params: str) -> Case:
    """A names B's thing (B's job unless `value`): 404 as if it did not exist, nothing of it in the answer;
    B gets through."""

    async def case(w: World, method: str, path: str) -> None:
        url = _fill(path, value or w.b_job)
        as_a = await w.api.request(method, url, headers=w.a, params=params)
        assert as_a.status_code == 404, f"{method} {path}: tenant A got {as_a.status_code} for B's: {as_a.text}"
        assert "B secret" not in as_a.text
        as_b = await w.api.request(method, url, headers=w.b, params=params)
        assert as_b.status_code not in (401, 403, 404, 422), (
            f"{method} {path}: the owner got {as_b.status_code}: {as_b.text}"
        )

    return case


_job_scoped = _owned_by_b()


async def _dead_letters(w: World, method: str, path: str) -> None:
    seen_by_a = [e["id"] for e in (await w.api.get(path, headers=w.a, params={"limit": 100})).json()["items"]]
    seen_by_b = [e["id"] for e in (await w.api.get(path, headers=w.b, params={"limit": 100})).json()["items"]]
    assert B_DEAD_LETTER in seen_by_b and B_DEAD_LETTER not in seen_by_a, (seen_by_a, seen_by_b)


async def _job_list(w: World, method: str, path: str) -> None:
    for status in (None, "pending"):
        params = {"limit": 100, **({"status": status} if status else {})}
        seen_by_a = [j["id"] for j in (await w.api.get(path, headers=w.a, params=params)).json()["items"]]
        seen_by_b = [j["id"] for j in (await w.api.get(path, headers=w.b, params=params)).json()["items"]]
        assert w.a_job in seen_by_a and w.b_job not in seen_by_a, seen_by_a
        assert w.b_job in seen_by_b and w.a_job not in seen_by_b, seen_by_b
    # A cursor is only a position: one taken from B's ids still pages through A's jobs alone.
    mine = {j["id"] for j in (await w.api.get(path, headers=w.a, params={"limit": 100})).json()["items"]}
    paged = (await w.api.get(path, headers=w.a, params={"cursor": w.b_job, "limit": 100})).json()["items"]
    assert {j["id"] for j in paged} <= mine


async def _job_create(w: World, method: str, path: str) -> None:
    """A's new job is A's: B cannot read it, and the same Idempotency-Key in B does not return A's job."""
    same = {"Idempotency-Key": "shared-order-7"}
    made = await w.api.post(path, headers=w.a | same, json=JOB)
    assert made.status_code == 202, made.text
    assert (await w.api.get(f"/api/jobs/{made.json()['id']}", headers=w.b)).status_code == 404
    other = await w.api.post(path, headers=w.b | same, json=JOB)
    assert other.status_code == 202 and other.json()["id"] != made.json()["id"], other.text


async def _job_bulk(w: World, method: str, path: str) -> None:
    """A's bulk jobs are A's: B cannot read them, nor list them."""
    made = await w.api.post(path, headers=w.a, json={"jobs": [JOB, JOB]})
    assert made.status_code == 200 and made.json()["accepted"] == 2, made.text
    for item in made.json()["items"]:
        assert (await w.api.get(f"/api/jobs/{item['id']}", headers=w.b)).status_code == 404
    listed = (await w.api.get("/api/jobs", headers=w.b, params={"limit": 100})).json()["items"]
    assert not {i["id"] for i in made.json()["items"]} & {j["id"] for j in listed}


def _admin_only(body: dict | None = None, *, url: str | None = None) -> Case:
    """Tenant A's (non-admin) key gets 403; the admin's gets through. `url` when the path needs real values."""

    async def case(w: World, method: str, path: str) -> None:
        url_ = url or _fill(path, "nope")
        as_a = await w.api.request(method, url_, headers=w.a, json=body)
        assert as_a.status_code == 403 and "admin" in as_a.json()["detail"], (
            f"{method} {path}: {as_a.status_code} {as_a.text}"
        )
        as_admin = await w.api.request(method, url_, headers=w.admin, json=body)
        assert as_admin.status_code not in (401, 403), f"{method} {path}: admin got {as_admin.status_code}"

    return case


async def _status(w: World, method: str, path: str) -> None:
    """The status figures are the caller's tenant's: A's scan covers exactly A's jobs."""
    mine = (await w.api.get("/api/jobs", headers=w.a, params={"limit": 100})).json()["items"]
    seen = (await w.api.get(path, headers=w.a)).json()
    assert seen["tenant"] == "alpha" and seen["scanned"] == len(mine), (seen["scanned"], len(mine))


async def _sse_stream(w: World, method: str, path: str) -> None:
    """Following B's job on A's stream is refused before the stream starts (an open stream never ends here)."""
    refused = await w.api.get(path, headers=w.a, params={"jobs": w.b_job})
    assert refused.status_code == 404 and w.b_job in refused.text, refused.text


async def _ws_stream(w: World, method: str, path: str) -> None:
    """Over a real WebSocket: subscribing to B's job as A gets `unknown_job`, B's own subscription is ready."""
    import asyncio
    import json

    import uvicorn
    import websockets

    server = uvicorn.Server(
        uvicorn.Config(w.app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="websockets-sansio")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), what="a server for the WebSocket case")
        url = f"ws://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}{path}"
        for who, headers, expected in (("A", w.a, "error"), ("B", w.b, "job")):
            async with websockets.connect(url, additional_headers=headers) as ws:
                await ws.send(json.dumps({"type": "subscribe", "jobs": [w.b_job]}))
                first = json.loads(await asyncio.wait_for(ws.recv(), 15))
                assert first["type"] == expected, (who, first)
                if expected == "error":
                    assert first["code"] == "unknown_job" and "B secret" not in json.dumps(first)
    finally:
        server.should_exit = True
        await task


async def _webhook_endpoints(w: World, method: str, path: str) -> None:
    """A webhook endpoint (and its secret) belongs to the tenant that registered it."""
    made = await w.api.post("/api/webhooks/endpoints", headers=w.b, json={"url": "https://hooks.example/b"})
    assert made.status_code == 200, made.text
    b_endpoint = made.json()
    listed = (await w.api.get("/api/webhooks/endpoints", headers=w.a)).json()
    assert b_endpoint["id"] not in [e["id"] for e in listed] and b_endpoint["secret"] not in str(listed)
    if "{endpoint_id}" in path:
        as_a = await w.api.request(method, _fill(path, b_endpoint["id"]), headers=w.a)
        assert as_a.status_code == 404 and b_endpoint["secret"] not in as_a.text, as_a.text
        as_b = await w.api.request(method, _fill(path, b_endpoint["id"]), headers=w.b)
        assert as_b.status_code == 200, as_b.text


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/api/status"): _status,
    ("GET", "/api/jobs/stream"): _sse_stream,
    ("WS", "/api/jobs/stream"): _ws_stream,
    ("POST", "/api/webhooks/endpoints"): _webhook_endpoints,
    ("GET", "/api/webhooks/endpoints"): _webhook_endpoints,
    ("GET", "/api/webhooks/endpoints/{endpoint_id}"): _webhook_endpoints,
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/rotate"): _webhook_endpoints,
    ("POST", "/api/jobs"): _job_create,
    ("POST", "/api/jobs/bulk"): _job_bulk,
    ("GET", "/api/jobs"): _job_list,
    ("GET", "/api/jobs/{job_id}"): _job_scoped,
    ("GET", "/api/jobs/{job_id}/events"): _job_scoped,
    ("GET", "/api/jobs/{job_id}/result"): _job_scoped,
    ("GET", "/api/jobs/{job_id}/history"): _owned_by_b(at="2030-01-01T00:00:00Z"),
    ("POST", "/api/jobs/{job_id}/cancel"): _job_scoped,
    ("POST", "/api/jobs/{job_id}/retry"): _job_scoped,
    ("GET", "/api/debug/{job_id}"): _job_scoped,
    ("GET", "/api/dlq"): _dead_letters,
    ("POST", "/api/dlq/{entry_id}/replay"): _owned_by_b(B_DEAD_LETTER),
    ("POST", "/api/admin/stages/{stage}/{action}"): _admin_only(url="/api/admin/stages/crawl/resume"),
    ("POST", "/api/admin/keys"): _admin_only({"tenant": "gamma"}),
    ("GET", "/api/admin/keys"): _admin_only(),
    ("DELETE", "/api/admin/keys/{key_id}"): _admin_only(),
}


def api_routes(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """Every (method, path) under /api, through included routers; WebSocket routes as method `WS`."""
    found = []
    for context in iter_route_contexts(routes):
        route, path = context.original_route, context.path or ""
        if not path.startswith("/api"):
            continue
        if isinstance(route, (APIWebSocketRoute, WebSocketRoute)):
            found.append(("WS", path))
        elif methods := getattr(route, "methods", None):
            found.extend((m, path) for m in sorted(methods - {"HEAD"}))
        else:  # a mounted app or another kind of route: it needs a case all the same
            found.append((type(route).__name__, path))
    return found


async def test_every_api_route_has_an_isolation_case(world):
    missing = [f"{m} {p}" for m, p in api_routes(world.app_routes) if (m, p) not in CASES]
    assert not missing, (
        "these routes have no tenant-isolation case; add one to CASES in "
        f"tests/integration/test_gateway_security.py: {', '.join(missing)}"
    )


async def test_tenant_a_cannot_reach_tenant_b_through_any_route(world):
    routes = api_routes(world.app_routes)
    assert len(routes) >= 8, routes
    # The read routes first: cancel and retry, run as the owner, change B's job.
    for method, path in sorted(routes, key=lambda r: r[0] != "GET"):
        if (method, path) in CASES:
            await CASES[(method, path)](world, method, path)


async def test_no_route_answers_without_a_valid_key(world):
    revoked = (await world.api.post("/api/admin/keys", headers=world.admin, json={"tenant": "alpha"})).json()
    assert (await world.api.delete(f"/api/admin/keys/{revoked['key_id']}", headers=world.admin)).status_code == 204
    bad = {
        "no key": {},
        "unknown key": {"Authorization": "Bearer sw_" + "A" * 43},
        "not a key": {"X-API-Key": "hunter2"},
        "other scheme": {"Authorization": f"Basic {world.keys['alpha']}"},
        "empty bearer": {"Authorization": "Bearer "},
        "revoked key": _key_headers(revoked["key"]),
        "oversized key": {"Authorization": "Bearer sw_" + "A" * 5000},
    }
    for method, path in api_routes(world.app_routes):
        if method == "WS":
            continue  # WebSocket handshakes are checked by their route's own case
        for what, headers in bad.items():
            r = await world.api.request(
                method, _fill(path, world.b_job), headers=headers, json={} if method == "POST" else None
            )
            assert r.status_code == 401, f"{method} {path} with {what}: {r.status_code} {r.text}"
            assert r.headers["www-authenticate"].startswith("Bearer"), (method, path, what)


async def test_keys_never_reach_a_log_line(world, capfd, caplog):
    from sitewright_runtime.logs import get_logger

    a_key = world.keys["alpha"]
    with service_logging("gateway"):
        await world.api.get("/api/jobs", headers={"X-API-Key": a_key})
        await world.api.get(f"/api/jobs/{world.b_job}", headers=world.a)
        await world.api.post("/api/jobs", headers=world.a, json={"url": "not a url"})
        await world.api.get("/api/jobs", headers={"Authorization": f"Bearer {a_key}x"})
        await world.api.get("/api/jobs", headers={"Authorization": f"Basic {a_key}"})
        made = await world.api.post("/api/admin/keys", headers=world.admin, json={"tenant": "alpha", "name": "logged?"})
        new_key = made.json()["key"]
        await world.api.delete(f"/api/admin/keys/{made.json()['key_id']}", headers=world.admin)
        await world.api.get("/api/jobs", headers=_key_headers(new_key))
        get_logger("probe").info("capture_works")
    logged = capfd.readouterr().err + caplog.text
    assert "capture_works" in logged
    for key in (a_key, new_key, TEST_API_KEY, world.keys["beta"]):
        assert key not in logged
        assert key[3:20] not in logged


async def test_errors_never_echo_the_key(world):
    a_key = world.keys["alpha"]
    for headers in (
        {"Authorization": f"Bearer {a_key}x"},
        {"X-API-Key": a_key + "x"},
        {"Authorization": f"Basic {a_key}"},
    ):
        r = await world.api.get("/api/jobs", headers=headers)
        assert r.status_code == 401 and a_key[3:20] not in r.text and a_key[3:20] not in str(r.headers)


async def test_a_key_revoked_on_one_instance_stops_working_on_another_within_the_cache_time(
    kafka_bootstrap, mongo_url, unique
):
    from sitewright_gateway.web.auth import KEY_CACHE_S

    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with gateway(settings) as first, gateway(settings) as second:
        made = (await first.post("/api/admin/keys", json={"tenant": "acme"})).json()
        acme = _key_headers(made["key"])
        assert (await second.get("/api/jobs", headers=acme)).status_code == 200  # now cached on the second
        assert (await first.delete(f"/api/admin/keys/{made['key_id']}")).status_code == 204
        assert (await first.get("/api/jobs", headers=acme)).status_code == 401, (
            "the revoking instance forgets it at once"
        )

        async def refused():
            return (await second.get("/api/jobs", headers=acme)).status_code == 401

        await eventually(refused, timeout=KEY_CACHE_S + 5, what="the revoked key refused by the other instance")


async def test_job_creation_is_rate_limited_per_key_with_retry_after(kafka_bootstrap, mongo_url, unique):
    # A token every 100 s: however slow the machine, the bucket does not refill during the test.
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, rate_jobs_per_s=0.01, rate_jobs_burst=3)
    async with gateway(settings) as admin:
        other = _key_headers((await admin.post("/api/admin/keys", json={"tenant": "other"})).json()["key"])
        codes = [(await admin.post("/api/jobs", json=JOB)).status_code for _ in range(3)]
        assert codes == [202, 202, 202]
        limited = await admin.post("/api/jobs", json=JOB)
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["retry-after"]) <= 100
        assert "0.01 per second with bursts of 3" in limited.json()["detail"]
        assert (await admin.post("/api/jobs", headers=other, json=JOB)).status_code == 202, (
            "another key has its own bucket"
        )
        assert (await admin.get("/api/jobs")).status_code == 200, "reads are not limited"


async def test_request_bodies_over_the_limit_get_413_also_when_chunked(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, max_body_bytes=4096)

    async def chunks(total: int):
        yield b'{"url": "https://example.com/", "options": {"language": "'
        for _ in range(total // 1024):
            yield b"x" * 1024
        yield b'"}}'

    async with gateway(settings) as api:
        r = await api.post("/api/jobs", content=chunks(100_000), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "larger than 4096 bytes" in r.json()["detail"], r.text
        assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"

        async def small():
            yield b'{"url": "https://example.com/"}'

        ok = await api.post("/api/jobs", content=small(), headers={"content-type": "application/json"})
        assert ok.status_code == 202, ok.text
        declared = await api.post(
            "/api/jobs", content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
