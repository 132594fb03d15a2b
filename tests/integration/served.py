"""The gateway served over real HTTP and WebSocket in this process (uvicorn on a free port)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from sitewright_devstack.infra import free_port
from sitewright_gateway.config import GatewaySettings
from sitewright_gateway.main import create_app
from sitewright_gateway.web.server import GatewayServer, uvicorn_config
from tests.helpers import eventually


@contextlib.asynccontextmanager
async def served(settings: GatewaySettings, port: int = 0, app: FastAPI | None = None) -> AsyncIterator[str]:
    """Yield the gateway's base URL (http://127.0.0.1:<port>) while it serves `app` (made by the caller to
    reach its state; a new one unless given) on a free port unless given."""
    port = port or free_port()
    server = GatewayServer(uvicorn_config(app or create_app(settings), "127.0.0.1", port))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()  # raise why it stopped
        return server.started

    try:
        await eventually(started, timeout=60, what="the gateway to serve")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
