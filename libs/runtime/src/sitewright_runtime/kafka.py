"""The log client: topic setup, a publisher, and consumer settings tuned for Sitewright's brokers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord

from sitewright_contracts import Event, Topics, encode
from sitewright_contracts.topics import (
    H_DLQ_ATTEMPTS,
    H_DLQ_ERROR,
    H_DLQ_GROUP,
    H_DLQ_REASON,
    H_DLQ_SOURCE_OFFSET,
    H_DLQ_SOURCE_PARTITION,
    H_DLQ_SOURCE_TOPIC,
)
from sitewright_contracts.wire import Headers

from .logs import get_logger
from .metrics import DLQ_MESSAGES, EVENTS_PUBLISHED

log = get_logger(__name__)

# A killed member's partitions move in about 9 s with these; the 45 s default makes failover slow.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1500
# How long a fetch may wait for data (`SITEWRIGHT_FETCH_MAX_WAIT_MS`). The embedded broker spends CPU
# for every fetch it holds open, so a short wait keeps an idle pipeline busy, and the 500 ms client
# default costs a quiet pipeline a quarter-second per hop (measured: bench/README.md, "Fetch wait").
FETCH_MAX_WAIT_MS = 100


async def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int, *, timeout_s: float = 30) -> None:
    """Create the topics with an explicit partition count (auto-created ones get the broker's default)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing
            ]
            if missing:
                try:
                    await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass  # another process created it between our list and create
            return
        except Exception as exc:  # broker still starting: retry until the deadline
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"could not create topics on {bootstrap}: {exc!r}") from exc
            await asyncio.sleep(0.25)
        finally:
            await admin.close()


def new_consumer(bootstrap: str, group_id: str, client_id: str, **overrides: object) -> AIOKafkaConsumer:
    """A consumer that commits by hand, after handling, and starts from the beginning of the log."""
    options: dict[str, object] = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        # The embedded broker's end offsets are not exact: `latest` may replay; start from the
        # beginning and rely on committed offsets and idempotent handlers instead.
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_poll_records=1000,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    options.update(overrides)
    return AIOKafkaConsumer(**options)


@dataclass(frozen=True)
class DeadMessage:
    """A message to dead-letter: what was at `topic`, `partition`, `offset`, with its key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


class Publisher:
    """Publishes events; many sends in flight at once, awaited together, never one by one."""

    def __init__(self, bootstrap: str, client_id: str, topics: Topics):
        self.topics = topics
        self._options = dict(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            # The embedded broker cannot do idempotent producers (InitProducerId fails);
            # consumers are idempotent instead.
            enable_idempotence=False,
            linger_ms=2,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=15000,
        )
        self._producer: AIOKafkaProducer | None = None
        self.started = False

    async def start(self) -> None:
        # aiokafka objects bind to the running loop, so they are made here rather than in __init__.
        self._producer = AIOKafkaProducer(**self._options)
        await self._producer.start()
        self.started = True

    async def stop(self) -> None:
        if self._producer is not None:
            self.started = False
            await self._producer.stop()
            self._producer = None

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether a broker answers a metadata request now (for status pages; never raises)."""
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout_s)
            return True
        except Exception:
            return False

    async def publish(
        self,
        events: Sequence[Event],
        *,
        traceparent: str | None = None,
        topic: str | None = None,
        priority: int | None = None,
    ) -> list[tuple[int, int]]:
        """Publish `events` (to the events topic unless told) once the broker has acknowledged all of them.

        Returns where each landed: (partition, offset), in the order of `events`."""
        topic = topic or self.topics.events
        futures = []
        for event in events:
            key, value, headers = encode(event, traceparent, priority)
            assert self._producer is not None, "Publisher.start() first"
            futures.append(await self._producer.send(topic, value=value, key=key, headers=headers))
        landed = await asyncio.gather(*futures)
        for event in events:
            EVENTS_PUBLISHED.labels(event.type).inc()
        return [(md.partition, md.offset) for md in landed]

    async def send_raw(self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        assert self._producer is not None, "Publisher.start() first"
        await (await self._producer.send(topic, value=value, key=key, headers=headers))

    async def dead_letter(self, record: ConsumerRecord, *, group: str, reason: str, error: str, attempts: int) -> None:
        """Copy `record` to the DLQ with headers naming where it came from and why it failed."""
        await self.dead_letter_message(
            DeadMessage(
                record.topic, record.partition, record.offset, record.key, record.value, list(record.headers or ())
            ),
            group=group,
            reason=reason,
            error=error,
            attempts=attempts,
        )

    async def dead_letter_message(
        self, message: DeadMessage, *, group: str, reason: str, error: str, attempts: int
    ) -> None:
        """Put `message` (what was at its topic, partition and offset) on the DLQ, saying who gave up and why."""
        headers = [(k, v) for k, v in message.headers if not k.startswith("dlq-")]
        headers += [
            (H_DLQ_SOURCE_TOPIC, message.topic.encode()),
            (H_DLQ_SOURCE_PARTITION, str(message.partition).encode()),
            (H_DLQ_SOURCE_OFFSET, str(message.offset).encode()),
            (H_DLQ_GROUP, group.encode()),
            (H_DLQ_REASON, reason.encode()),
            (H_DLQ_ERROR, error[:1000].encode()),
            (H_DLQ_ATTEMPTS, str(attempts).encode()),
        ]
        await self.send_raw(self.topics.dlq, key=message.key, value=message.value, headers=headers)
        DLQ_MESSAGES.labels(reason).inc()
        log.warning(
            "dead_lettered",
            reason=reason,
            error=error[:300],
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            group=group,
        )
