"""The HTTP and WebSocket routes, a module per resource. Each translates HTTP into one call of the service layer."""

from __future__ import annotations

from fastapi import FastAPI

from . import admin, commands, dashboard, dead_letters, health, jobs, result_links, status, streams, webhooks


def include(app: FastAPI) -> None:
    """Add every route to `app`."""
    app.include_router(streams.router)  # before jobs.router: /api/jobs/stream is not a job id
    for module in (jobs, commands, dead_letters, admin, health, webhooks, result_links, status):
        app.include_router(module.router)
    dashboard.mount(app)
