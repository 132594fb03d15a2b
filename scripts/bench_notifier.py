"""Measure the notifier: outcomes published at once -> signed webhooks received, over the embedded stack.

    uv run python scripts/bench_notifier.py [jobs] [instances]

Starts a broker and a database on free ports, a local receiver answering 204,
`instances` notifier workers in this process, publishes `jobs` job.completed
events at once and reports the throughput and the publish-to-receipt latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sitewright_contracts import events as ev
from sitewright_contracts import uuid7
from sitewright_contracts.models import SeoResult
from sitewright_devstack import infra
from sitewright_notifier.config import NotifierSettings
from sitewright_notifier.main import create_app
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.mongo import connect

RESULT = SeoResult.model_validate(
    {
        "meta": {"title": "Bench", "description": "Bench."},
        "content": [{"heading": "H", "body": "B"}],
        "schema": {"@context": "https://schema.org", "@type": "Thing"},
    }
)


class Receiver(BaseHTTPRequestHandler):
    arrivals: list[float] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["content-length"]))
        type(self).arrivals.append(time.monotonic())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def main(jobs: int, instances: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-notifier-"))
    kafka_port, mongo_port = infra.free_port(), infra.free_port()
    broker = infra.start_broker(home / "logs", kafka_port)
    mongo_server = infra.start_mongo(home / "mongo", home / "logs", mongo_port)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    settings = NotifierSettings(
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        mongo_url=infra.mongo_url(mongo_port),
        env="local",
        topic_partitions=4,
        log_level="WARNING",
    )
    mongo = connect(settings.mongo_url)
    try:
        ids = [uuid7() for _ in range(jobs)]
        await mongo[settings.mongo_db]["jobs"].insert_many(
            [
                {
                    "_id": i,
                    "tenant": "default",
                    "url": "https://bench.example/",
                    "notify": [{"channel": "webhook", "target": hook}],
                }
                for i in ids
            ]
        )
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(instances):
                await stack.enter_async_context(create_app(settings).running())
            publisher = Publisher(settings.kafka_bootstrap, "bench", settings.topics)
            await publisher.start()
            # One job first, untimed: the clock starts once the group has its partitions and a webhook went out.
            await publisher.publish([ev.JobCompleted(job_id=ids[0], data=ev.JobCompletedData(result=RESULT))])
            while not Receiver.arrivals:
                await asyncio.sleep(0.05)
            Receiver.arrivals.clear()
            ids = ids[1:]
            jobs -= 1
            started = time.monotonic()
            await publisher.publish([ev.JobCompleted(job_id=i, data=ev.JobCompletedData(result=RESULT)) for i in ids])
            await publisher.stop()
            deadline = started + 300
            while len(Receiver.arrivals) < jobs and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        took = max(Receiver.arrivals) - started
        latencies = sorted(a - started for a in Receiver.arrivals)
        print(
            f"{len(Receiver.arrivals)}/{jobs} webhooks, {instances} notifier(s): {took:.2f} s, "
            f"{len(Receiver.arrivals) / took:.0f} webhooks/s; time to first {latencies[0] * 1000:.0f} ms, "
            f"median {statistics.median(latencies) * 1000:.0f} ms, last {latencies[-1] * 1000:.0f} ms"
        )
    finally:
        await mongo.close()
        server.shutdown()
        mongo_server.stop()
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500, int(sys.argv[2]) if len(sys.argv) > 2 else 1))
