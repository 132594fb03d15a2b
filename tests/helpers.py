"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# The admin key of the default tenant that test gateways and stacks create at start.
TEST_API_KEY = "sw_test-admin-key-for-the-default-tenant"
AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 30, interval: float = 0.1, what: str = ""
) -> T:
    """Poll `check` until it returns a truthy value, or fail after `timeout` seconds with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value: {last!r}")


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], timeout: float = 30
) -> list[Any]:
    """Read `topic` from the beginning (no consumer group) until `until(records)` holds."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                records.extend(batch)
            if until(records):
                return records
        raise AssertionError(f"timed out after {timeout}s reading {topic}; got {len(records)} records")
    finally:
        await consumer.stop()


@contextlib.contextmanager
def service_logging(service: str, fmt: str = "json") -> Iterator[None]:
    """Log as a service does (to the sys.stderr of the moment, e.g. pytest's capture), then put structlog back.

    Loggers are not cached meanwhile: a cached one would keep writing to the
    capture's file after the test has closed it.
    """
    import structlog

    from sitewright_runtime.logs import configure_logging

    configure_logging(service, fmt=fmt, level="DEBUG")
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
