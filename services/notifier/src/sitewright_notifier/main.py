"""The notifier's app factory: consumes job outcomes, schedules deliveries, runs the delivery loop."""

from __future__ import annotations

import httpx

from sitewright_runtime.consumer import KeyedConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.loop import run as run_loop
from sitewright_runtime.mongo import connect
from sitewright_runtime.netguard import AddressGuard
from sitewright_runtime.settings import load_settings
from sitewright_runtime.webhook_endpoints import COLLECTION as ENDPOINTS
from sitewright_runtime.webhook_endpoints import WebhookEndpoints
from sitewright_runtime.worker import Worker

from .channels import Channel
from .config import NotifierSettings
from .deliveries import DeliveryLoop, DeliveryStore
from .email import EmailChannel
from .handlers import NotifyHandlers
from .sms import SmsChannel, TwilioSms
from .webhook import WebhookChannel


def create_app(settings: NotifierSettings) -> Worker:
    publisher = Publisher(settings.kafka_bootstrap, client_id="notifier", topics=settings.topics)
    mongo = connect(settings.mongo_url, "sitewright-notifier")
    db = mongo[settings.mongo_db]
    # No proxies from the environment: the connection must go to the address the SSRF guard checked.
    webhook_client = httpx.AsyncClient(follow_redirects=False, timeout=settings.webhook_timeout_s, trust_env=False)
    sms_client = httpx.AsyncClient(timeout=settings.sms_timeout_s)
    endpoints = WebhookEndpoints(db[ENDPOINTS])
    store = DeliveryStore(db["deliveries"])
    channels: list[Channel] = [
        WebhookChannel(
            webhook_client,
            AddressGuard.for_settings(settings),
            endpoints,
            timeout_s=settings.webhook_timeout_s,
            max_retry_after_s=settings.max_retry_after_s,
        ),
        EmailChannel(settings),
        SmsChannel(_sms_provider(settings, sms_client)),
    ]
    loop = DeliveryLoop(
        store,
        {c.name: c for c in channels},
        publisher,
        settings.retry_schedule,
        poll_s=settings.delivery_poll_s,
        lease_s=settings.delivery_lease_s,
        concurrency=settings.delivery_concurrency,
    )
    handlers = NotifyHandlers(settings, store, loop)
    outcome = handlers.on_outcome
    consumer = KeyedConsumer(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topics.events,
        group=settings.notifier_group,
        name="notifier",
        handlers={
            "job.requested": handlers.on_request,
            "job.completed": outcome,
            "job.failed": outcome,
            "job.cancelled": outcome,
        },
        publisher=publisher,
        max_in_flight=settings.max_in_flight,
        handler_attempts=settings.handler_attempts,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )

    async def start() -> None:
        # Twice the retention: deliveries finish after their job, and must not expire before it does.
        await store.create_indexes(keep_s=2 * settings.retention_s)
        await endpoints.create_indexes()
        await loop.start()

    async def close() -> None:
        await loop.stop()
        await webhook_client.aclose()
        await sms_client.aclose()
        await mongo.close()

    return Worker(
        name="notifier", settings=settings, publisher=publisher, consumers=[consumer], on_start=[start], on_stop=[close]
    )


def _sms_provider(settings: NotifierSettings, client: httpx.AsyncClient) -> TwilioSms | None:
    if not (settings.sms_account_sid and settings.sms_auth_token and settings.sms_from):
        return None
    return TwilioSms(
        client,
        base_url=settings.sms_base_url,
        account_sid=settings.sms_account_sid,
        auth_token=settings.sms_auth_token.get_secret_value(),
        from_number=settings.sms_from,
        max_retry_after_s=settings.max_retry_after_s,
    )


def run() -> None:
    run_loop(create_app(load_settings(NotifierSettings)).serve())
