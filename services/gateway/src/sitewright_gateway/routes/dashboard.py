"""The web dashboard: one HTML page and its static ES modules, served by the gateway (no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent.parent / "static"


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/static/`."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        # no-cache: a browser revalidates the page, so a new gateway version's scripts load at once.
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
