"""A consumer group member in its own process, for tests that kill it with SIGKILL.

`python -m tests.integration.group_member BOOTSTRAP TOPIC GROUP keyed|batch` joins the group and
prints `started <job_id>` for every job it takes, then never finishes it: whatever it holds stays
uncommitted, as a crashed worker's unfinished work does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord

from sitewright_contracts import Topics, decode
from sitewright_contracts import events as ev
from sitewright_runtime.batch_consumer import BatchConsumer
from sitewright_runtime.consumer import HandlerContext, KeyedConsumer
from sitewright_runtime.kafka import Publisher


def started(job_id: str) -> None:
    print("started", job_id, flush=True)


async def main(bootstrap: str, topic: str, group: str, kind: str) -> None:
    forever = asyncio.Event()
    if kind == "keyed":

        async def handle(event: ev.Event, _: HandlerContext) -> None:
            started(event.job_id)
            await forever.wait()

        publisher = Publisher(bootstrap, "member", Topics())
        consumer: KeyedConsumer | BatchConsumer = KeyedConsumer(
            bootstrap=bootstrap,
            topic=topic,
            group=group,
            name="member",
            handlers={"job.requested": handle},
            publisher=publisher,
        )
    else:

        async def on_batch(records: Sequence[ConsumerRecord]) -> None:
            for record in records:
                started(decode(record.value).job_id)
            await forever.wait()

        consumer = BatchConsumer(bootstrap=bootstrap, topic=topic, group=group, name="member", on_batch=on_batch)
    await consumer.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
