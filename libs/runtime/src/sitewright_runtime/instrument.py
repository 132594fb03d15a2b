"""The equivalent of faststream's Prometheus middleware for Sitewright's own consumers, and consumer lag.

The services consume with aiokafka directly (`consumer.py`: key-level parallelism
needed its own loop), so what faststream's middleware would record is recorded
here: messages received per topic and handler, in process, handling time,
outcome and exception type. `LagGauge` publishes how far each assigned
partition's finished work is behind the end of the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition

from .metrics import (
    CONSUMER_LAG,
    MESSAGE_EXCEPTIONS,
    MESSAGE_PROCESSING,
    MESSAGES_IN_PROCESS,
    MESSAGES_PROCESSED,
    MESSAGES_RECEIVED,
    MESSAGES_RECEIVED_BYTES,
)


class Outcome:
    """Set `value` inside `handling` to say how the message ended; an exception means `error`."""

    def __init__(self) -> None:
        self.value = "ok"


@contextmanager
def handling(group: str, topic: str, handler: str, *, size: int, count: int = 1) -> Iterator[Outcome]:
    """Record one message (or a batch of `count`) taken in and handled by `handler`."""
    MESSAGES_RECEIVED.labels(group, topic, handler).inc(count)
    MESSAGES_RECEIVED_BYTES.labels(group, topic, handler).inc(size)
    in_process = MESSAGES_IN_PROCESS.labels(group, handler)
    in_process.inc(count)
    outcome = Outcome()
    started = time.perf_counter()
    try:
        yield outcome
    except BaseException as exc:
        outcome.value = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
        MESSAGE_EXCEPTIONS.labels(group, handler, type(exc).__name__).inc()
        raise
    finally:
        in_process.dec(count)
        MESSAGE_PROCESSING.labels(group, handler).observe(time.perf_counter() - started)
        MESSAGES_PROCESSED.labels(group, handler, outcome.value).inc(count)


def exception(group: str, handler: str, exc: BaseException) -> None:
    """Count an exception a handler raised and that the consumer caught (to retry it)."""
    MESSAGE_EXCEPTIONS.labels(group, handler, type(exc).__name__).inc()


class LagGauge:
    """`sitewright_consumer_lag{group,partition}`: records between finished work and the end of the log.

    "Finished" is the offset below which every message is done (what the consumer
    commits), so a message being handled still counts as lag. Partitions this
    member no longer owns are removed, so two replicas never both report one.
    """

    def __init__(self, group: str, interval_s: float = 1.0):
        self.group = group
        self.interval_s = interval_s
        self._reported: set[int] = set()
        self._last = 0.0

    async def update(self, consumer: AIOKafkaConsumer, done: Mapping[TopicPartition, int | None]) -> None:
        """`done` maps each assigned partition to its finished offset (None: nothing fetched yet)."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        self._last = now
        seen: set[int] = set()
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:  # no fetch answered for it yet
                continue
            finished = done.get(tp)
            if finished is None:
                try:
                    finished = await consumer.position(tp)
                except Exception:  # revoked meanwhile
                    continue
            CONSUMER_LAG.labels(self.group, str(tp.partition)).set(max(0, high - finished))
            seen.add(tp.partition)
        for partition in self._reported - seen:
            CONSUMER_LAG.remove(self.group, str(partition))
        self._reported = seen

    def clear(self) -> None:
        for partition in self._reported:
            CONSUMER_LAG.remove(self.group, str(partition))
        self._reported = set()
