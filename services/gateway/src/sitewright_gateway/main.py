"""The gateway's app factory: the API, the projector and the scheduler in one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware

from sitewright_runtime.batch_consumer import BatchConsumer
from sitewright_runtime.kafka import Publisher, ensure_topics
from sitewright_runtime.logs import configure_logging, get_logger
from sitewright_runtime.mongo import connect
from sitewright_runtime.netguard import AddressGuard
from sitewright_runtime.settings import load_settings

from . import dead_letters, routes
from .config import GatewaySettings
from .readmodel.group_insert import GroupInsert
from .readmodel.store import Store
from .readmodel.writer import Projection
from .routes.jobs import BULK_PATH
from .scheduler.loop import Scheduler
from .state import GatewayState
from .streams.hub import Hub
from .web import errors
from .web.admission import Admission
from .web.auth import KeyStore
from .web.body_limit import BodyLimit
from .web.http_metrics import HttpMetrics
from .web.openapi_errors import document_errors
from .web.schemas import MAX_BULK_BYTES
from .web.security_headers import SecurityHeaders
from .web.server import GatewayServer, uvicorn_config
from .web.shedding import Shedding

log = get_logger(__name__)


def create_app(settings: GatewaySettings) -> FastAPI:
    """Build the gateway; its lifespan connects to MongoDB and the log and runs the background loops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings.mongo_url)
        store = Store(client[settings.mongo_db])
        await store.follow_active_model()
        await store.create_indexes(settings.retention)
        keys = KeyStore(store.api_keys)
        if settings.bootstrap_api_key:
            await keys.ensure(
                settings.bootstrap_api_key.get_secret_value(), settings.default_tenant, name="bootstrap", admin=True
            )
        await ensure_topics(settings.kafka_bootstrap, settings.topics.all, settings.topic_partitions)
        publisher = Publisher(settings.kafka_bootstrap, client_id="gateway", topics=settings.topics)
        await publisher.start()
        projection = Projection(
            store,
            publisher,
            settings.retry_policy,
            settings.projector_group,
            settings.retention,
            settings.notify_reconcile_after,
        )
        projector = BatchConsumer(
            bootstrap=settings.kafka_bootstrap,
            topic=settings.topics.events,
            group=settings.projector_group,
            name="gateway-projector",
            on_batch=projection,
            set_aside=projection.set_aside,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        dead_letter_consumer = BatchConsumer(
            bootstrap=settings.kafka_bootstrap,
            topic=settings.topics.dlq,
            group=f"{settings.projector_group}-dlq",
            name="gateway-dlq",
            on_batch=dead_letters.DeadLetters(store),
            # Every fetch the embedded broker holds open costs it CPU (`kafka.FETCH_MAX_WAIT_MS`);
            # dead letters can wait.
            fetch_max_wait_ms=500,
        )
        scheduler = Scheduler(settings, store, publisher)
        hub = Hub(
            store,
            revoked=keys.revoked,
            max_per_key=settings.stream_max_per_key,
            queue_size=settings.stream_queue_size,
            idle_close_s=settings.stream_feed_idle_s,
        )
        app.state.gateway = GatewayState(
            settings=settings,
            client=client,
            store=store,
            keys=keys,
            publisher=publisher,
            guard=AddressGuard.for_settings(settings),
            projection=projection,
            projector=projector,
            scheduler=scheduler,
            hub=hub,
            admission=Admission(store, settings.admission_max_active_per_tenant, settings.admission_max_active),
            job_inserts=GroupInsert(lambda: store.jobs),
            page_inserts=GroupInsert(lambda: store.events),
        )
        tasks = [asyncio.create_task(c.run()) for c in (projector, dead_letter_consumer, scheduler)]
        log.info("gateway_started", env=settings.env)
        try:
            yield
        finally:
            await hub.stop()
            for c in (projector, dead_letter_consumer, scheduler):
                c.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await publisher.stop()
            await client.close()

    app = FastAPI(
        title="Sitewright",
        version="0.1.0",
        description="Turns a website into SEO-ready content, reliably, in the background.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, larger={BULK_PATH: MAX_BULK_BYTES})
    app.add_middleware(HttpMetrics)  # added last, so outermost: it also counts the 413s BodyLimit answers
    if settings.cors_origins:
        # Keys travel in headers, never cookies: no credentials mode, and only the headers the API reads.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(
        SecurityHeaders,
        https=settings.public_url.lower().startswith("https://"),
        docs_paths=(app.docs_url or "", app.redoc_url or "", app.swagger_ui_oauth2_redirect_url or ""),
    )
    # Added last, so outermost: a shed request costs no other middleware.
    app.add_middleware(Shedding, max_in_flight=settings.http_max_in_flight)
    app.add_exception_handler(RequestValidationError, errors.validation_error)  # type: ignore[arg-type]
    routes.include(app)
    document_errors(app)
    return app


def run() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", fmt=settings.log_format, level=settings.log_level)
    GatewayServer(
        uvicorn_config(create_app(settings), settings.gateway_host, settings.gateway_port, settings.max_body_bytes)
    ).run()
