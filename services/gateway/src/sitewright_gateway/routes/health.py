"""Health and metrics: `/healthz` (the process answers), `/readyz` (it can work), `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sitewright_runtime.worker import metrics_endpoint

router = APIRouter()


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
