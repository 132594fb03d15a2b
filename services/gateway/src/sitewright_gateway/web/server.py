"""uvicorn for the gateway: on shutdown, job streams end first.

uvicorn waits for open responses to finish before it runs the app's
shutdown, and a job stream (SSE) never finishes by itself: without this, a
stopping gateway would hang until its graceful-shutdown timeout with every
stream open, and clients would learn nothing.
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from sitewright_runtime.loop import UVICORN_LOOP


def uvicorn_config(app: FastAPI, host: str, port: int, ws_max_size: int = 64 * 1024) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        loop=UVICORN_LOOP,
        http="httptools",  # C parser; uvicorn's default without it, h11, was a tenth of the gateway's CPU under load
        ws="websockets-sansio",  # the "legacy" websockets implementation uvicorn picks by default is deprecated
        ws_max_size=ws_max_size,  # a stream message is small; the same cap as a request body
    )


class GatewayServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        state = getattr(getattr(app, "state", None), "gateway", None)
        if state is not None:
            state.hub.end_streams()  # each stream says "shutting_down" and ends, so its client resumes elsewhere
        await super().shutdown(sockets)
