"""Security headers, CORS and the OpenAPI error declarations, on the app without its lifespan (no I/O)."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from sitewright_gateway.config import GatewaySettings
from sitewright_gateway.main import create_app
from sitewright_gateway.web.security_headers import STRICT_CSP


def app_client(**extra: object) -> httpx.AsyncClient:
    settings = GatewaySettings(kafka_bootstrap="k:1", mongo_url="mongodb://m", env="local", **extra)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://gw")


async def test_every_answer_carries_the_strict_headers_and_no_hsts_over_http():
    async with app_client(public_url="http://127.0.0.1:8000") as client:
        r = await client.get("/openapi.json")
    assert r.headers["content-security-policy"] == STRICT_CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert "camera=()" in r.headers["permissions-policy"]
    assert "strict-transport-security" not in r.headers


async def test_hsts_only_when_the_public_url_is_https():
    async with app_client(public_url="https://sitewright.example") as client:
        r = await client.get("/openapi.json")
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_pages_get_their_own_policy_allowing_exactly_their_inline_scripts(path):
    async with app_client() as client:
        r = await client.get(path)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert csp != STRICT_CSP and "https://cdn.jsdelivr.net" in csp
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", r.text, re.S)
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src
    assert len(inline) == script_src.count("'sha256-")
    assert "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
    assert int(r.headers["content-length"]) == len(r.content)


async def test_cors_is_off_unless_origins_are_configured():
    async with app_client() as client:
        r = await client.options(
            "/api/jobs", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        )
    assert "access-control-allow-origin" not in r.headers


async def test_cors_allows_only_the_configured_origins_and_the_headers_the_api_reads():
    async with app_client(cors_origins=["https://app.example"]) as client:
        ok = await client.options(
            "/api/jobs",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in ok.headers, "keys go in headers; no cookies are sent along"
        other = await client.options(
            "/api/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        simple = await client.get("/openapi.json", headers={"Origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"
        assert "retry-after" in simple.headers["access-control-expose-headers"].lower()


async def test_openapi_declares_the_key_and_the_errors_every_api_route_can_answer():
    async with app_client() as client:
        schema = (await client.get("/openapi.json")).json()
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            if not path.startswith("/api"):
                continue
            assert op.get("security"), f"{method.upper()} {path} does not declare the API key"
            responses = op["responses"]
            assert "401" in responses, f"{method.upper()} {path}"
            if "requestBody" in op:
                assert "413" in responses and "422" in responses
            if path.startswith("/api/admin"):
                assert "403" in responses
            for code, response in responses.items():
                if code.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"
                    }
    assert "429" in schema["paths"]["/api/jobs"]["post"]["responses"]
    assert "Retry-After" in schema["paths"]["/api/jobs"]["post"]["responses"]["429"]["headers"]
