"""A worker process: consumers, a publisher, and a small HTTP server for /metrics and health."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .batch_consumer import BatchConsumer
from .consumer import KeyedConsumer
from .control import ControlListener
from .kafka import Publisher, ensure_topics
from .logs import configure_logging, get_logger
from .settings import ServiceSettings

log = get_logger(__name__)

Hook = Callable[[], Awaitable[None]]


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class Worker:
    """Wires one stage service: start everything, run until stopped, stop in reverse order."""

    def __init__(
        self,
        *,
        name: str,
        settings: ServiceSettings,
        publisher: Publisher,
        consumers: Sequence[KeyedConsumer | BatchConsumer],
        on_start: Sequence[Hook] = (),
        on_stop: Sequence[Hook] = (),
        stage: str | None = None,
    ):
        self.name = name
        self.settings = settings
        self.publisher = publisher
        self.consumers: list[KeyedConsumer | BatchConsumer | ControlListener] = list(consumers)
        if stage is not None:
            # Pause and resume of this worker's stage arrive on the control topic.
            keyed = [c for c in consumers if isinstance(c, KeyedConsumer)]
            self.consumers.append(
                ControlListener(
                    bootstrap=settings.kafka_bootstrap,
                    topic=settings.topics.control,
                    stage=stage,
                    consumers=keyed,
                    client_id=f"{name}-control",
                )
            )
        self.on_start = list(on_start)
        self.on_stop = list(on_stop)
        self.metrics_port: int | None = None

    def health_app(self) -> Starlette:
        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"status": "ok", "service": self.name})

        async def readyz(_: Request) -> JSONResponse:
            ready = self.publisher.started and all(c.running for c in self.consumers)
            return JSONResponse({"ready": ready, "service": self.name}, status_code=200 if ready else 503)

        return Starlette(
            routes=[Route("/metrics", metrics_endpoint), Route("/healthz", healthz), Route("/readyz", readyz)]
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Worker]:
        """Run the worker in the background for the body of the `async with` (tests use this)."""
        await ensure_topics(self.settings.kafka_bootstrap, self.settings.topics.all, self.settings.topic_partitions)
        await self.publisher.start()
        for hook in self.on_start:
            await hook()
        server = uvicorn.Server(
            uvicorn.Config(
                self.health_app(),
                host=self.settings.metrics_host,
                port=self.settings.metrics_port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        # uvicorn >= 0.29 no longer has or calls install_signal_handlers (it uses capture_signals), so
        # this assignment no longer keeps uvicorn off SIGINT/SIGTERM; left as it was (a behaviour change of its own).
        server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        http_task = asyncio.create_task(server.serve())
        tasks = [
            asyncio.create_task(c.run(), name=f"{self.name}:{type(c).__name__}:{i}")
            for i, c in enumerate(self.consumers)
        ]
        try:
            while not server.started and not http_task.done():
                await asyncio.sleep(0.01)
            if server.started:
                self.metrics_port = server.servers[0].sockets[0].getsockname()[1]
            log.info("worker_started", metrics_port=self.metrics_port, consumers=len(self.consumers))
            yield self
            for task in tasks:
                if task.done() and (exc := task.exception()) is not None:
                    raise exc
        finally:
            for consumer in self.consumers:
                consumer.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.should_exit = True
            await http_task
            for hook in reversed(self.on_stop):
                await hook()
            await self.publisher.stop()
            log.info("worker_stopped")

    async def serve(self) -> None:
        """Run until SIGINT or SIGTERM, then drain in-flight work and stop cleanly."""
        configure_logging(self.name, fmt=self.settings.log_format, level=self.settings.log_level)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with self.running():
            consumer_tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith(f"{self.name}:")]
            stop_task = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stop_task, *consumer_tasks], return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
