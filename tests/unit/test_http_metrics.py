"""The gateway's HTTP metrics label requests by route template, never by raw path."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from sitewright_gateway.web.http_metrics import HttpMetrics


def count(method: str, route: str, status: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "sitewright_http_requests_total", {"method": method, "route": route, "status": status}
        )
        or 0.0
    )


def app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(HttpMetrics)

    @app.get("/api/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        return {"id": thing_id}

    @app.get("/api/boom")
    async def boom() -> dict:
        raise RuntimeError("boom")

    return app


async def test_route_templates_status_codes_and_unmatched_paths():
    before_ok = count("GET", "/api/things/{thing_id}", "200")
    before_missing = count("GET", "unmatched", "404")
    before_error = count("GET", "/api/boom", "500")
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for i in range(3):
            assert (await client.get(f"/api/things/{i}")).status_code == 200
        assert (await client.get("/no/such/path/abc123")).status_code == 404
        assert (await client.get("/api/boom")).status_code == 500
    assert count("GET", "/api/things/{thing_id}", "200") == before_ok + 3
    assert count("GET", "unmatched", "404") == before_missing + 1
    assert count("GET", "/api/boom", "500") == before_error + 1
    routes = {s.labels["route"] for m in REGISTRY.collect() if m.name == "sitewright_http_requests" for s in m.samples}
    assert not any("abc123" in r or r.endswith("/0") for r in routes), routes
