"""The batch consumer: one function gets each fetched batch (the projector, the DLQ store).

Unlike `KeyedConsumer`, which hands out one message at a time, it suits handlers that fold many
messages into a few writes. It commits a batch once the function returned, and never retries a
batch forever because of one bad message (`BatchConsumer`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure

from .consumer import LOG_CHECK_INTERVAL_S, rewind_if_log_shrank
from .instrument import LagGauge, handling
from .kafka import FETCH_MAX_WAIT_MS, new_consumer
from .logs import get_logger
from .metrics import MESSAGES_SET_ASIDE

log = get_logger(__name__)

BatchHandler = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]
# Given a message the batch handler failed on `BATCH_ATTEMPTS` times by itself, and the last error.
SetAside = Callable[[ConsumerRecord, BaseException], Awaitable[None]]
BATCH_ATTEMPTS = 5
# MongoDB error codes that mean "not now" (an election, a shutdown, a lost connection), not "this is bad".
_MONGO_NOT_NOW = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the broker or the database is away, rather than that a message is bad.

    Such failures are retried without end: a projection may not skip an event because its database
    is down or electing a primary."""
    if isinstance(exc, OSError | TimeoutError | KafkaError | ConnectionFailure):
        return True
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", []) + exc.details.get("writeConcernErrors", [])
        return any(e.get("code") in _MONGO_NOT_NOW for e in errors)
    if isinstance(exc, OperationFailure):
        return exc.code in _MONGO_NOT_NOW or exc.has_error_label("RetryableWriteError")
    return False


class BatchConsumer:
    """Hands each fetched batch to one function; commits after it returns.

    A batch that fails is tried again. Failures that say a dependency is away (`transient`, e.g. the
    database is down) are retried without end: a projection may not skip events. Any other failure counts,
    and after `attempts` of them the batch is applied one message at a time, so that the message it fails
    on is found; that one, after `attempts` failures of its own, goes to `set_aside` (the DLQ) and the
    rest goes on. A batch is never retried forever because of one bad message.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        name: str,
        on_batch: BatchHandler,
        max_records: int = 1000,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
        set_aside: SetAside | None = None,
        attempts: int = BATCH_ATTEMPTS,
        transient: Callable[[BaseException], bool] = unreachable,
    ):
        self.topic, self.group, self.name = topic, group, name
        self.set_aside = set_aside
        self.attempts = attempts
        self.transient = transient
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.on_batch = on_batch
        self.max_records = max_records
        self.bootstrap = bootstrap
        self._stopping = asyncio.Event()
        self.running = False
        self.lag = LagGauge(group)
        self._done: dict[TopicPartition, int] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self._consumer = new_consumer(self.bootstrap, self.group, self.name, fetch_max_wait_ms=self.fetch_max_wait_ms)
        self._consumer.subscribe([self.topic])
        await self._consumer.start()
        self.running = True
        last_check = time.monotonic()
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=100, max_records=self.max_records)
                records = [r for recs in batches.values() for r in recs]
                if time.monotonic() - last_check >= LOG_CHECK_INTERVAL_S:
                    await rewind_if_log_shrank(self._consumer)
                    last_check = time.monotonic()
                if records:
                    size = sum(len(r.value or b"") for r in records)
                    with handling(self.group, self.topic, "batch", size=size, count=len(records)):
                        await self._apply(records)
                    offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
                    self._done.update(offsets)
                    try:
                        await self._consumer.commit(offsets)
                    except Exception as exc:  # rebalance: the batch is re-applied by the new owner, idempotently
                        log.warning("commit_failed", group=self.group, error=repr(exc))
                await self.lag.update(self._consumer, self._done)
        finally:
            self.running = False
            self.lag.clear()
            await self._consumer.stop()

    async def _apply(self, records: Sequence[ConsumerRecord]) -> None:
        error = await self._try(records)
        if error is None:
            return
        if len(records) == 1:
            await self._set_aside(records[0], error)
            return
        for record in records:  # one at a time, to find the message it fails on
            error = await self._try([record])
            if error is not None:
                await self._set_aside(record, error)

    async def _try(self, records: Sequence[ConsumerRecord]) -> BaseException | None:
        """Apply `records`; None once applied, or the last error after `attempts` failures that count."""
        delay, failures = 0.2, 0
        while True:
            try:
                await self.on_batch(records)
                return None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("batch_failed", group=self.group, records=len(records), error=repr(exc), exc_info=True)
                if self._stopping.is_set():
                    raise
                if not self.transient(exc):
                    failures += 1
                    if failures >= self.attempts:
                        return exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    async def _set_aside(self, record: ConsumerRecord, error: BaseException) -> None:
        MESSAGES_SET_ASIDE.labels(self.group).inc()
        log.error(
            "message_set_aside", group=self.group, partition=record.partition, offset=record.offset, error=repr(error)
        )
        delay = 0.2
        while self.set_aside is not None:
            try:
                await self.set_aside(record, error)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the DLQ is on the broker: wait for it, the message must not be lost
                log.error("set_aside_failed", group=self.group, error=repr(exc))
                if self._stopping.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
