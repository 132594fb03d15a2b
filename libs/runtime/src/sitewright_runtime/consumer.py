"""Consumers that commit only what is done.

`KeyedConsumer` (stage services): messages with different keys run
concurrently, messages with the same key (one job) run in order, and the
committed offset of a partition is the lowest offset not yet finished, so a
slow job never holds up the others behind it and a crash redelivers exactly
the unfinished work (at least once, never at most once). It reads ahead of
what it can run, and when every slot is busy the waiting message with the
highest `priority` header starts next. `pause()` stops fetching (the group
membership and in-flight work go on); `resume()` starts again.

The projector's `BatchConsumer` is in `batch_consumer.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from sitewright_contracts import Event, UndecodableEvent, decode, header
from sitewright_contracts.topics import H_EVENT_TYPE, H_PRIORITY, H_TRACEPARENT
from sitewright_contracts.wire import child_traceparent

from .instrument import LagGauge, exception, handling
from .kafka import FETCH_MAX_WAIT_MS, Publisher, new_consumer
from .logs import get_logger, log_context
from .metrics import EVENTS_HANDLED

log = get_logger(__name__)

COMMIT_INTERVAL_S = 0.2
LOG_CHECK_INTERVAL_S = 2.0


async def rewind_if_log_shrank(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    """Seek to the beginning of partitions whose log is now shorter than our position; return them.

    A broker that lost its log (the embedded one keeps it in memory) answers a fetch past its new end
    with nothing at all, so without this a consumer would wait until the new log grew past its old
    position. The high watermark of the last fetch is exact (unlike `end_offsets` on the embedded
    broker), and a healthy consumer is never past it. Re-reading from the start is safe: every
    consumer drops what it has already done.
    """
    shrank = []
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is not None and await consumer.position(tp) > end:
            shrank.append(tp)
    if shrank:
        await consumer.seek_to_beginning(*shrank)
        log.warning("log_shrank_rewound", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in shrank))
    return shrank


@dataclass
class HandlerContext:
    """What a handler gets besides its event: the record, and a way to emit follow-up events."""

    record: ConsumerRecord
    publisher: Publisher
    producer_name: str
    traceparent: str

    @property
    def priority(self) -> int:
        return record_priority(self.record)

    async def emit(self, *events: Event) -> None:
        """Publish follow-up events in the same trace and priority; returns once the broker has them."""
        await self.publisher.publish(events, traceparent=self.traceparent, priority=self.priority)


def record_priority(record: ConsumerRecord) -> int:
    """The job priority a message carries in its header (5 when it has none)."""
    try:
        return int(header(record.headers, H_PRIORITY) or 5)
    except ValueError:
        return 5


Handler = Callable[[Event, HandlerContext], Awaitable[None]]


@dataclass
class OffsetTracker:
    """Which offsets of one partition are fetched but not finished."""

    pending: set[int] = field(default_factory=set)
    next_offset: int | None = None
    committed: int | None = None

    def started(self, offset: int) -> None:
        self.pending.add(offset)
        self.next_offset = offset + 1

    def finished(self, offset: int) -> None:
        self.pending.discard(offset)

    def done_below(self) -> int | None:
        """The offset below which everything fetched is finished (None before the first fetch)."""
        return min(self.pending) if self.pending else self.next_offset

    def commit_point(self) -> int | None:
        """The offset below which everything is finished: what may be committed."""
        point = self.done_below()
        return point if point is not None and point != self.committed else None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type information
    def __init__(self, owner: KeyedConsumer):
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Commit what is finished before another member takes over; unfinished work is redelivered there.
        await self.owner.commit(only=set(revoked))
        for tp in revoked:
            self.owner.trackers.pop(tp, None)
        gone = set(revoked)
        self.owner._waiting = [w for w in self.owner._waiting if w[2] not in gone]
        heapq.heapify(self.owner._waiting)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self.owner.trackers[tp] = OffsetTracker()
        log.info("partitions_assigned", group=self.owner.group, partitions=sorted(tp.partition for tp in assigned))


class KeyedConsumer:
    """Runs handlers per event type with key-level parallelism and watermark commits."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        name: str,
        handlers: Mapping[str, Handler],
        publisher: Publisher,
        max_in_flight: int = 256,
        handler_attempts: int = 3,
        retry_backoff_s: float = 0.5,
        unordered: frozenset[str] = frozenset(),
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
    ):
        self.topic, self.group, self.name = topic, group, name
        self.handlers = dict(handlers)
        # Event types handled the moment they arrive: not queued by priority, not held by a pause,
        # not after the same job's earlier messages. A cancel must reach the work it cancels
        # while that work is still running.
        self.unordered = unordered
        self._unordered_tasks: set[asyncio.Task[None]] = set()
        self.publisher = publisher
        self.max_in_flight = max_in_flight
        self.handler_attempts = handler_attempts
        self.retry_backoff_s = retry_backoff_s
        self.trackers: dict[TopicPartition, OffsetTracker] = {}
        self.bootstrap = bootstrap
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._tails: dict[bytes | None, asyncio.Task[None]] = {}
        # Fetched, not yet started: (-priority, arrival, partition, record). Reading ahead of the free slots
        # is what lets a high-priority message overtake the ones that arrived before it.
        self.read_ahead = max(64, 2 * max_in_flight)
        self._waiting: list[tuple[int, int, TopicPartition, ConsumerRecord]] = []
        self._arrival = itertools.count()
        self._in_flight = 0
        self.paused = False
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer
        self.running = False
        self.lag = LagGauge(group)

    def stop(self) -> None:
        self._stopping.set()

    def pause(self) -> None:
        """Stop starting new work (a paused stage); what is in flight finishes."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    async def run(self, *, drain_timeout_s: float = 10) -> None:
        """Consume until `stop()`; then finish in-flight work (bounded) and commit it."""
        self._consumer = new_consumer(self.bootstrap, self.group, self.name, fetch_max_wait_ms=self.fetch_max_wait_ms)
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self.running = True
        last_commit = last_check = time.monotonic()
        try:
            while not self._stopping.is_set():
                self._start_waiting()
                room = self.read_ahead - len(self._waiting)
                assignment = self._consumer.assignment()
                if self.paused:
                    # Paused partitions keep the group membership alive (getmany still polls) but fetch nothing.
                    self._consumer.pause(*assignment)
                elif self._consumer.paused():
                    self._consumer.resume(*self._consumer.paused())
                if room <= 0 or (self.paused and self._waiting):
                    self._slot_free.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_free.wait(), COMMIT_INTERVAL_S)
                else:
                    batches = await self._consumer.getmany(timeout_ms=100, max_records=room)
                    for tp, records in batches.items():
                        tracker = self.trackers.setdefault(tp, OffsetTracker())
                        for record in records:
                            self._accept(tp, tracker, record)
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                    await self.commit()
                    last_commit = time.monotonic()
                if time.monotonic() - last_check >= LOG_CHECK_INTERVAL_S:
                    for tp in await rewind_if_log_shrank(self._consumer):
                        self.trackers[tp] = OffsetTracker()
                    last_check = time.monotonic()
                await self.lag.update(self._consumer, {tp: t.done_below() for tp, t in self.trackers.items()})
        finally:
            tails = [*self._tails.values(), *self._unordered_tasks]
            if tails:
                await asyncio.wait(tails, timeout=drain_timeout_s)
            with contextlib.suppress(Exception):
                await self.commit()
            self.running = False
            self.lag.clear()
            await self._consumer.stop()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        offsets = {}
        for tp, tracker in self.trackers.items():
            if only is not None and tp not in only:
                continue
            point = tracker.commit_point()
            if point is not None:
                offsets[tp] = point
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:  # a rebalance in progress: the next commit or the new owner covers it
            log.warning("commit_failed", group=self.group, error=repr(exc))
            return
        for tp, point in offsets.items():
            if tp in self.trackers:
                self.trackers[tp].committed = point

    def _accept(self, tp: TopicPartition, tracker: OffsetTracker, record: ConsumerRecord) -> None:
        """Take a fetched record: skip it if it is not ours, else queue it by priority."""
        tracker.started(record.offset)
        event_type = header(record.headers, H_EVENT_TYPE)
        if event_type not in self.handlers:
            # Not ours: filtered on the header, without decoding the body.
            tracker.finished(record.offset)
            return
        if event_type in self.unordered:
            task = asyncio.create_task(self._process(tracker, record, None))
            self._unordered_tasks.add(task)
            task.add_done_callback(self._unordered_tasks.discard)
            return
        heapq.heappush(self._waiting, (-record_priority(record), next(self._arrival), tp, record))

    def _start_waiting(self) -> None:
        """Start queued messages, highest priority first, while slots are free and the stage is not paused."""
        while self._waiting and self._in_flight < self.max_in_flight and not self.paused:
            _, _, tp, record = heapq.heappop(self._waiting)
            tracker = self.trackers.get(tp)
            if tracker is None:  # the partition was revoked meanwhile: its new owner gets the message
                continue
            self._dispatch(tracker, record)

    def _dispatch(self, tracker: OffsetTracker, record: ConsumerRecord) -> None:
        self._in_flight += 1
        key = record.key
        previous = self._tails.get(key)
        task = asyncio.create_task(self._process(tracker, record, previous))
        self._tails[key] = task
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key: bytes | None, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]
        self._in_flight -= 1
        self._slot_free.set()

    async def _process(
        self, tracker: OffsetTracker, record: ConsumerRecord, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:  # the same job's earlier message runs first
            await asyncio.wait([previous])
        try:
            await self._handle(record)
        finally:
            tracker.finished(record.offset)

    async def _handle(self, record: ConsumerRecord) -> None:
        handler_name = header(record.headers, H_EVENT_TYPE) or "unknown"
        with handling(self.group, record.topic, handler_name, size=len(record.value or b"")) as outcome:
            try:
                event = decode(record.value)
            except UndecodableEvent as exc:
                outcome.value = "undecodable"
                await self._dead_letter(record, exc.reason, exc.detail, 1)
                return
            handler = self.handlers.get(event.type)
            if handler is None:  # the header named one type, the body another
                outcome.value = "undecodable"
                await self._dead_letter(record, "header_mismatch", f"body type {event.type!r}", 1)
                return
            parent = header(record.headers, H_TRACEPARENT)
            delivery = HandlerContext(record, self.publisher, self.name, child_traceparent(parent))
            with log_context(job_id=event.job_id, event_id=event.event_id, traceparent=parent, event_type=event.type):
                started = time.perf_counter()
                outcome.value = await self._run(handler, event, delivery, handler_name)
                log.info(
                    "handled",
                    outcome=outcome.value,
                    attempt=event.attempt,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )

    async def _run(self, handler: Handler, event: Event, delivery: HandlerContext, handler_name: str) -> str:
        """Call the handler, retrying with backoff; dead-letter the message when every try failed."""
        for attempt in range(1, self.handler_attempts + 1):
            try:
                await handler(event, delivery)
                EVENTS_HANDLED.labels(self.group, "ok").inc()
                return "ok" if attempt == 1 else "retried"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                exception(self.group, handler_name, exc)
                log.warning(
                    "handler_failed", attempt=attempt, error=repr(exc), exc_info=attempt == self.handler_attempts
                )
                if attempt == self.handler_attempts:
                    EVENTS_HANDLED.labels(self.group, "dead_lettered").inc()
                    await self._dead_letter(delivery.record, "handler_error", repr(exc), attempt)
                    return "dead_lettered"
                await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable: handler_attempts >= 1")

    async def _dead_letter(self, record: ConsumerRecord, reason: str, error: str, attempts: int) -> None:
        # If the DLQ write itself fails the message stays unfinished and is redelivered later.
        while True:
            try:
                await self.publisher.dead_letter(
                    record, group=self.group, reason=reason, error=error, attempts=attempts
                )
                return
            except Exception as exc:
                log.error("dead_letter_failed", error=repr(exc))
                await asyncio.sleep(1)
