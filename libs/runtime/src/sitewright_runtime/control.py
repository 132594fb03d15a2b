"""Stage pause and resume, broadcast on `jobs.control`.

Every instance of a stage service reads the whole control topic without a
consumer group (so each instance sees every message, and a newly started
instance replays the history and starts in the current state), and pauses
or resumes its consumers accordingly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from sitewright_contracts import UndecodableEvent, decode
from sitewright_contracts import events as ev

from .consumer import KeyedConsumer
from .logs import get_logger
from .metrics import STAGE_PAUSED

log = get_logger(__name__)


class ControlListener:
    def __init__(self, *, bootstrap: str, topic: str, stage: str, consumers: Sequence[KeyedConsumer], client_id: str):
        self.bootstrap, self.topic, self.stage, self.client_id = bootstrap, topic, stage, client_id
        self.consumers = list(consumers)
        self._stopping = asyncio.Event()
        self.running = False

    def stop(self) -> None:
        self._stopping.set()

    def apply(self, event: ev.Event) -> None:
        if not isinstance(event, ev.StagePaused | ev.StageResumed) or event.data.stage != self.stage:
            return
        paused = isinstance(event, ev.StagePaused)
        for consumer in self.consumers:
            consumer.pause() if paused else consumer.resume()
        STAGE_PAUSED.labels(self.stage).set(1 if paused else 0)
        log.info("stage_paused" if paused else "stage_resumed", stage=self.stage)

    async def run(self) -> None:
        # A pause takes effect within half a second; a shorter wait costs the broker CPU all the time.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=500,
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            while not partitions and not self._stopping.is_set():
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.topic)
                if not partitions:
                    await asyncio.sleep(0.5)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions or ())]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self.running = True
            while not self._stopping.is_set():
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        with contextlib.suppress(UndecodableEvent):
                            self.apply(decode(record.value))
        finally:
            self.running = False
            await consumer.stop()
