"""A group member killed with SIGKILL: the survivor takes over its partitions, its unfinished work and new work."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from sitewright_contracts import Topics, decode, uuid7
from sitewright_contracts import events as ev
from sitewright_runtime.batch_consumer import BatchConsumer
from sitewright_runtime.consumer import HandlerContext, KeyedConsumer
from sitewright_runtime.kafka import Publisher, ensure_topics
from tests.helpers import eventually

ROOT = Path(__file__).parents[2]
PARTITIONS = 4


def requests(n: int) -> list[ev.JobRequested]:
    return [ev.JobRequested(job_id=uuid7(), data=ev.JobRequestedData(url="https://example.com/")) for _ in range(n)]


@pytest.mark.parametrize("kind", ["keyed", "batch"])
async def test_the_survivor_of_a_killed_member_takes_over_its_unfinished_and_new_work(kafka_bootstrap, unique, kind):
    topics = Topics(f"f{unique}.")
    await ensure_topics(kafka_bootstrap, topics.all, PARTITIONS)
    group = f"g{unique}"
    publisher = Publisher(kafka_bootstrap, "test", topics)
    await publisher.start()
    handled: list[str] = []

    async def handle(event: ev.Event, _: HandlerContext) -> None:
        handled.append(event.job_id)

    async def on_batch(records: Sequence[ConsumerRecord]) -> None:
        handled.extend(decode(r.value).job_id for r in records)

    survivor: KeyedConsumer | BatchConsumer = (
        KeyedConsumer(
            bootstrap=kafka_bootstrap,
            topic=topics.events,
            group=group,
            name="survivor",
            handlers={"job.requested": handle},
            publisher=publisher,
        )
        if kind == "keyed"
        else BatchConsumer(
            bootstrap=kafka_bootstrap, topic=topics.events, group=group, name="survivor", on_batch=on_batch
        )
    )
    # The other member takes what it is given and never finishes it, until it is killed.
    member = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.group_member",
        kafka_bootstrap,
        topics.events,
        group,
        kind,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    taken: list[str] = []

    async def read_member() -> None:
        assert member.stdout is not None
        async for line in member.stdout:  # its log lines go there too
            if line.startswith(b"started "):
                taken.append(line.decode().split()[1])

    reader = asyncio.create_task(read_member())
    task = asyncio.create_task(survivor.run())
    try:

        def owned() -> int:
            return len(survivor._consumer.assignment()) if survivor.running else 0

        await eventually(
            lambda: asyncio.sleep(0, owned() == PARTITIONS // 2), timeout=60, what="the group split in two"
        )
        # At least once: a rebalance may hand a job to both members.
        before = requests(40)
        await publisher.publish(before)
        await eventually(
            lambda: asyncio.sleep(0, set(handled) | set(taken) >= {j.job_id for j in before}),
            timeout=30,
            what="every job taken by one member or the other",
        )
        assert taken, "the member took none of the work: the test would prove nothing"
        member.send_signal(signal.SIGKILL)
        await member.wait()
        after = requests(40)
        await publisher.publish(after)
        expected = set(taken) | {j.job_id for j in before} | {j.job_id for j in after}
        await eventually(
            lambda: asyncio.sleep(0, expected <= set(handled)),
            timeout=60,
            what="the survivor handling the killed member's unfinished jobs and the new ones",
        )
        assert owned() == PARTITIONS
    finally:
        if member.returncode is None:
            member.kill()
            await member.wait()
        reader.cancel()
        survivor.stop()
        await task
        await publisher.stop()
