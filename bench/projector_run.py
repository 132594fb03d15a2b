"""The projector alone, in its own process, over a topic that is already full.

    python -m bench.projector_run BOOTSTRAP MONGO_URL TOPIC OUT.json

A new consumer group and an empty database: the projector applies the whole
topic from the beginning, as a rebuild of the read model would. Reported:
events applied per second from the first batch to the last.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition

from sitewright_contracts import Topics
from sitewright_gateway.readmodel.rules import RetryPolicy
from sitewright_gateway.readmodel.store import Store
from sitewright_gateway.readmodel.writer import Projection
from sitewright_runtime.batch_consumer import BatchConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.loop import run as run_loop
from sitewright_runtime.mongo import connect


async def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def main(bootstrap: str, mongo_url: str, topic: str, out: str) -> None:
    total = await end_offsets(bootstrap, topic)
    client = connect(mongo_url)
    name = f"bench_projection_{uuid.uuid4().hex[:8]}"
    store = Store(client[name])
    await store.create_indexes()
    publisher = Publisher(bootstrap, client_id="bench-projector", topics=Topics())
    await publisher.start()
    projection = Projection(store, publisher, RetryPolicy(max_attempts=3, backoff_s=(60.0,)), name, timedelta(days=7))
    times: list[float] = []

    async def on_batch(records):
        if not times:
            times.append(time.monotonic())
        await projection(records)

    consumer = BatchConsumer(bootstrap=bootstrap, topic=topic, group=name, name="bench-projector", on_batch=on_batch)
    task = asyncio.create_task(consumer.run())
    deadline = time.monotonic() + 600
    seen = 0
    while time.monotonic() < deadline and not task.done():
        seen = projection.applied
        if seen >= total:
            break
        await asyncio.sleep(0.05)
    end = time.monotonic()
    consumer.stop()
    await asyncio.gather(task, return_exceptions=True)
    await publisher.stop()
    await client.drop_database(name)
    await client.close()
    seconds = end - times[0] if times else None
    with open(out, "w") as f:
        json.dump(
            {
                "events": seen,
                "topic_events": total,
                "seconds": seconds,
                "events_per_s": round(seen / seconds, 1) if seconds else None,
            },
            f,
        )


if __name__ == "__main__":
    run_loop(main(*sys.argv[1:5]))
