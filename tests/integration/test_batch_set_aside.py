"""A batch consumer never retries a batch forever because of one bad message (`BatchConsumer`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord

from sitewright_contracts import Topics, decode, uuid7
from sitewright_contracts import events as ev
from sitewright_runtime.batch_consumer import BatchConsumer
from sitewright_runtime.kafka import Publisher, ensure_topics
from tests.helpers import eventually


def requests(n: int) -> list[ev.JobRequested]:
    return [ev.JobRequested(job_id=uuid7(), data=ev.JobRequestedData(url="https://example.com/")) for _ in range(n)]


async def test_one_bad_message_is_set_aside_and_the_rest_goes_on(kafka_bootstrap, unique):
    topics = Topics(f"a{unique}.")
    await ensure_topics(kafka_bootstrap, topics.all, 1)
    publisher = Publisher(kafka_bootstrap, "test", topics)
    await publisher.start()
    first, later = requests(5), requests(2)
    bad = first[2].job_id
    applied: list[str] = []
    aside: list[tuple[str, str]] = []
    outages = [OSError("database away")] * 8  # more failures than `attempts`: these do not count

    async def on_batch(records: Sequence[ConsumerRecord]) -> None:
        if outages:
            raise outages.pop()
        jobs = [decode(r.value).job_id for r in records]
        if bad in jobs:
            raise ValueError("this document cannot be stored")
        applied.extend(jobs)

    async def set_aside(record: ConsumerRecord, error: BaseException) -> None:
        aside.append((decode(record.value).job_id, repr(error)))

    consumer = BatchConsumer(
        bootstrap=kafka_bootstrap,
        topic=topics.events,
        group=f"g{unique}",
        name="set-aside-test",
        on_batch=on_batch,
        set_aside=set_aside,
        attempts=3,
    )
    await publisher.publish(first)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _at_least(applied, 4), timeout=60, what="the good messages of the first batch")
        await publisher.publish(later)
        await eventually(lambda: _at_least(applied, 6), timeout=60, what="later messages")
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
        await publisher.stop()
    good = [e.job_id for e in first if e.job_id != bad] + [e.job_id for e in later]
    assert applied[-6:] == good and bad not in applied
    assert aside == [(bad, "ValueError('this document cannot be stored')")]
    assert not outages, "every outage was waited out, none counted as a bad message"


async def _at_least(items: list[str], n: int) -> bool:
    return len(set(items)) >= n
