"""Job stream fan-out: time from an event being produced to it reaching 1, 100 and 1,000 stream clients.

Starts a broker, a database and one gateway process (no workers: jobs are
driven by publishing `synthetic.job_story` events at a steady pace). Clients
are WebSocket connections subscribed to every job of the tenant, spread over
a few client processes so that receiving does not all queue on one core.
Latency = wall clock at receipt - wall clock just before the event was
published (same machine, same clock), so it covers the log, the projector,
the `job_events` change stream, the hub and the network.

    uv run python bench/stream_fanout.py                 # 1, 100, 1000 clients
    uv run python bench/stream_fanout.py --clients 1,100 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

from sitewright_contracts import Topics
from sitewright_devstack.stack import Stack, StackConfig
from sitewright_devstack.synthetic import job_story
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.mongo import connect

RESULTS = Path(__file__).parent / "results"
CONNECT_CONCURRENCY = 50


def client_process(url: str, key: str, n: int, jobs: int, ready: Any, results: Any) -> None:
    """Open `n` streams, report ready, record when each event id arrives on each until `jobs` jobs completed."""
    results.put(asyncio.run(_clients(url, key, n, jobs, ready)))


async def _clients(url: str, key: str, n: int, jobs: int, ready: Any) -> dict[str, Any]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    subscribed = asyncio.Event()
    count = 0

    async def one() -> list[tuple[str, float]]:
        nonlocal count
        async with gate:
            ws = await websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=60, max_queue=None
            )
            await ws.send(json.dumps({"type": "subscribe", "all": True}))
            while json.loads(await ws.recv())["type"] != "ready":
                pass
        count += 1
        if count == n:
            subscribed.set()
        receipts: list[tuple[str, float]] = []
        done = 0
        async with ws:
            while done < jobs:
                raw = await ws.recv()
                at = time.time()
                m = json.loads(raw)
                if m["type"] == "job" and m["event_id"]:
                    receipts.append((m["event_id"], at))
                    done += m["status"] == "completed"
        return receipts

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await subscribed.wait()
    ready.put(n)
    per_client = await asyncio.gather(*tasks)
    return {"receipts": per_client}


async def run_level(stack: Stack, clients: int, jobs: int, rate: float, processes: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    procs = min(processes, clients)
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    url = stack.gateway_url.replace("http://", "ws://") + "/api/jobs/stream"
    workers = [ctx.Process(target=client_process, args=(url, stack.api_key, s, jobs, ready, results)) for s in shares]
    for w in workers:
        w.start()
    connected = 0
    deadline = time.monotonic() + 600
    while connected < clients:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {connected} of {clients} clients subscribed within 600 s")
        connected += await asyncio.to_thread(ready.get, True, 600)

    produced: dict[str, float] = {}
    recorded: dict[str, float] = {}
    watcher = asyncio.create_task(_watch_recorded(stack, recorded))
    await asyncio.sleep(0.5)  # the watcher's change stream opens (a bench, not a test: no readiness signal)
    publisher = Publisher(stack.bootstrap, "bench", Topics(""))
    await publisher.start()
    try:
        async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.headers, timeout=30) as api:
            for _ in range(jobs):
                job_id = (
                    (await api.post("/api/jobs", json={"url": "https://example.com/"})).raise_for_status().json()["id"]
                )
                next_at = time.monotonic()
                for event in job_story(job_id, "https://example.com/"):
                    next_at += 1 / rate
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    produced[event.event_id] = time.time()
                    await publisher.publish([event])
    finally:
        await publisher.stop()

    latencies: list[float] = []
    missing = 0
    for _ in workers:
        outcome = await asyncio.to_thread(results.get, True, 300)
        for receipts in outcome["receipts"]:
            got = {eid: at for eid, at in receipts if eid in produced}
            missing += len(produced) - len(got)
            latencies.extend(at - produced[eid] for eid, at in got.items())
    for w in workers:
        w.join(30)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    projected = sorted(recorded[e] - produced[e] for e in produced if e in recorded)
    return {
        "clients": clients,
        "events": len(produced),
        "deliveries": len(latencies),
        "missing": missing,
        **_percentiles(latencies, ""),
        **_percentiles(projected, "recorded_"),
    }


def _percentiles(values: list[float], prefix: str) -> dict[str, float]:
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        f"{prefix}p50_ms": round(q[49] * 1000, 1),
        f"{prefix}p99_ms": round(q[98] * 1000, 1),
        f"{prefix}max_ms": round(values[-1] * 1000, 1),
    }


async def _watch_recorded(stack: Stack, recorded: dict[str, float]) -> None:
    """When each event reached the audit trail (seen by a change stream, as the hub sees it): the projection's share."""
    client = connect(stack.env()["SITEWRIGHT_MONGO_URL"], appname="bench")
    try:
        async with await client["sitewright"]["job_events"].watch([{"$match": {"operationType": "insert"}}]) as stream:
            async for change in stream:  # a page of the audit trail: a job's events from one projector batch
                for event in change["fullDocument"]["events"]:
                    recorded[event["event_id"]] = time.time()
    finally:
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,100,1000", help="comma-separated client counts")
    parser.add_argument("--jobs", type=int, default=2, help="jobs driven per level (65 events each)")
    parser.add_argument("--rate", type=float, default=10.0, help="events published per second")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory(prefix="sw-bench-") as home:
        stack = Stack(
            StackConfig(
                home=Path(home),
                gateway_port=0,
                services=("gateway",),
                extra_env={"SITEWRIGHT_STREAM_MAX_PER_KEY": str(max(levels) + 10), "SITEWRIGHT_LOG_LEVEL": "warning"},
            )
        )
        await stack.start()
        try:
            rows = []
            for clients in levels:
                row = await run_level(stack, clients, args.jobs, args.rate, args.processes)
                rows.append(row)
                print(
                    f"{row['clients']:>5} clients  p50 {row['p50_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms  "
                    f"max {row['max_ms']:>7.1f} ms  ({row['deliveries']} deliveries, {row['missing']} missing; "
                    f"in the audit trail after p50 {row['recorded_p50_ms']} ms, p99 {row['recorded_p99_ms']} ms)",
                    flush=True,
                )
        finally:
            stack.stop()

    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"stream_fanout-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "stream_fanout",
                "at": stamp,
                "rate_events_per_s": args.rate,
                "jobs_per_level": args.jobs,
                "client_processes": args.processes,
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "levels": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main())
