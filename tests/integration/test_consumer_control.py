"""The stage consumer against the real broker: priority of waiting work, and pause/resume from jobs.control."""

from __future__ import annotations

import asyncio

from sitewright_contracts import Topics, uuid7
from sitewright_contracts import events as ev
from sitewright_runtime.consumer import HandlerContext, KeyedConsumer
from sitewright_runtime.control import ControlListener
from sitewright_runtime.kafka import Publisher, ensure_topics
from tests.helpers import eventually


def request(priority: int) -> ev.JobRequested:
    return ev.JobRequested(job_id=uuid7(), data=ev.JobRequestedData(url="https://example.com/", priority=priority))


async def test_a_saturated_worker_starts_the_highest_priority_waiting_job_first(kafka_bootstrap, unique):
    topics = Topics(f"p{unique}.")
    await ensure_topics(kafka_bootstrap, topics.all, 1)
    publisher = Publisher(kafka_bootstrap, "test", topics)
    await publisher.start()
    started: list[str] = []
    release = asyncio.Event()

    async def handle(event: ev.Event, _: HandlerContext) -> None:
        started.append(event.job_id)
        await release.wait()

    consumer = KeyedConsumer(
        bootstrap=kafka_bootstrap,
        topic=topics.events,
        group=f"g{unique}",
        name="prio",
        handlers={"job.requested": handle},
        publisher=publisher,
        max_in_flight=1,
    )
    task = asyncio.create_task(consumer.run())
    try:
        blocker = request(5)
        await publisher.publish([blocker])
        await eventually(lambda: asyncio.sleep(0, started), what="the blocker started", timeout=60)
        low = [request(1) for _ in range(4)]
        high = request(9)
        await publisher.publish([*low, high])
        await eventually(lambda: asyncio.sleep(0, len(consumer._waiting) == 5), what="all five waiting")
        release.set()
        await eventually(lambda: asyncio.sleep(0, len(started) == 6), what="all six handled")
        assert started == [blocker.job_id, high.job_id, *[j.job_id for j in low]]
    finally:
        consumer.stop()
        await task
        await publisher.stop()


async def test_a_paused_stage_takes_no_new_work_until_resumed_and_loses_nothing(kafka_bootstrap, unique):
    topics = Topics(f"c{unique}.")
    await ensure_topics(kafka_bootstrap, topics.all, 2)
    publisher = Publisher(kafka_bootstrap, "test", topics)
    await publisher.start()
    handled: list[str] = []

    async def handle(event: ev.Event, _: HandlerContext) -> None:
        handled.append(event.job_id)

    consumer = KeyedConsumer(
        bootstrap=kafka_bootstrap,
        topic=topics.events,
        group=f"g{unique}",
        name="paused",
        handlers={"job.requested": handle},
        publisher=publisher,
    )
    control = ControlListener(
        bootstrap=kafka_bootstrap, topic=topics.control, stage="crawl", consumers=[consumer], client_id="t"
    )
    # Paused before this instance starts: it must start paused, from the control topic's history.
    await publisher.publish(
        [ev.StagePaused(job_id="stage:crawl", data=ev.StageControlData(stage="crawl"))], topic=topics.control
    )
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(control.run())]
    try:
        await eventually(lambda: asyncio.sleep(0, consumer.paused), what="the consumer paused from history")
        jobs = [request(5) for _ in range(20)]
        await publisher.publish(jobs)
        await asyncio.sleep(2)  # a bounded look for work that must not happen
        assert handled == [], "a paused stage started work"
        await publisher.publish(
            [ev.StageResumed(job_id="stage:crawl", data=ev.StageControlData(stage="crawl"))], topic=topics.control
        )
        await eventually(lambda: asyncio.sleep(0, len(handled) >= 20), what="every job handled after resume")
        await asyncio.sleep(0.5)
        assert sorted(handled) == sorted(j.job_id for j in jobs), "each job handled exactly once"
    finally:
        consumer.stop()
        control.stop()
        await asyncio.gather(*tasks)
        await publisher.stop()
