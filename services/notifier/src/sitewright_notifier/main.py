"""The notifier's app factory: consumes job outcomes, delivers them to the job's targets."""

from __future__ import annotations


import httpx
from sitewright_runtime.consumer import KeyedConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.mongo import connect
from sitewright_runtime.loop import run as run_loop
from sitewright_runtime.netguard import AddressGuard
from sitewright_runtime.settings import load_settings
from sitewright_runtime.worker import Worker

from .config import NotifierSettings
from .handlers import NotifyHandlers


def create_app(settings: NotifierSettings) -> Worker:
    publisher = Publisher(settings.kafka_bootstrap, client_id="notifier", topics=settings.topics)
    mongo = connect(settings.mongo_url, "sitewright-notifier")
    client = httpx.AsyncClient(follow_redirects=False, timeout=settings.webhook_timeout_s, trust_env=False)
    handlers = NotifyHandlers(settings, mongo[settings.mongo_db], client, AddressGuard(settings.allow_cidrs))
    outcome = handlers.on_outcome
    consumer = KeyedConsumer(
        bootstrap=settings.kafka_bootstrap, topic=settings.topics.events, group=settings.notifier_group, name="notifier",
        handlers={"job.completed": outcome, "job.failed": outcome, "job.cancelled": outcome},
        publisher=publisher, max_in_flight=settings.max_in_flight, handler_attempts=settings.handler_attempts,
    )

    async def close() -> None:
        await client.aclose()
        await mongo.close()

    return Worker(name="notifier", settings=settings, publisher=publisher, consumers=[consumer], on_stop=[close])


def run() -> None:
    run_loop(create_app(load_settings(NotifierSettings)).serve())
