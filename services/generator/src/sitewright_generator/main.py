"""The generator's app factory: consumes finished crawls and generate retries, emits the result."""

from __future__ import annotations

from typing import Protocol

from sitewright_contracts import events as ev
from sitewright_runtime.consumer import HandlerContext, KeyedConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.loop import run as run_loop
from sitewright_runtime.settings import load_settings
from sitewright_runtime.worker import Worker

from .anthropic import AnthropicProvider
from .config import GeneratorSettings
from .generate import Generator
from .handlers import GenerateHandlers
from .offline import OfflineProvider
from .openai_compat import OpenAICompatProvider
from .provider import Provider


def create_provider(settings: GeneratorSettings) -> Provider:
    """The provider SITEWRIGHT_GENERATOR_PROVIDER names; offline needs no network and no key."""
    if settings.generator_provider == "offline":
        return OfflineProvider()
    cls = AnthropicProvider if settings.generator_provider == "anthropic" else OpenAICompatProvider
    return cls(
        model=settings.model,
        base_url=settings.base_url,
        api_key=settings.api_key,
        temperature=settings.generator_temperature,
        timeout_s=settings.generator_timeout_s,
        total_timeout_s=settings.generator_total_timeout_s,
        max_connections=settings.generator_concurrency,
    )


class GenerateStage(Protocol):
    """What the generator's consumer calls: `GenerateHandlers`, or the benchmark's no-work stage."""

    async def on_crawl_succeeded(self, event: ev.Event, context: HandlerContext) -> None: ...
    async def on_retry_requested(self, event: ev.Event, context: HandlerContext) -> None: ...
    async def on_cancel_requested(self, event: ev.Event, context: HandlerContext) -> None: ...


def create_app(settings: GeneratorSettings, handlers: GenerateStage | None = None) -> Worker:
    publisher = Publisher(settings.kafka_bootstrap, client_id="generator", topics=settings.topics)
    on_stop = []
    if handlers is None:
        provider = create_provider(settings)
        handlers = GenerateHandlers(settings, Generator(provider, settings))
        on_stop.append(provider.aclose)
    consumer = KeyedConsumer(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topics.events,
        group=settings.generator_group,
        name="generator",
        handlers={
            "crawl.succeeded": handlers.on_crawl_succeeded,
            "job.retry_requested": handlers.on_retry_requested,
            "job.cancel_requested": handlers.on_cancel_requested,
        },
        publisher=publisher,
        max_in_flight=settings.max_in_flight,
        handler_attempts=settings.handler_attempts,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        unordered=frozenset({"job.cancel_requested"}),  # reaches the generation it stops, not after it
    )
    return Worker(
        name="generator",
        settings=settings,
        publisher=publisher,
        consumers=[consumer],
        stage="generate",
        on_stop=on_stop,
    )


def run() -> None:
    run_loop(create_app(load_settings(GeneratorSettings)).serve())
