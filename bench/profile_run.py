"""Profile the stack under scenario 1: py-spy records every service while N jobs go through.

    python -m bench.profile_run [N] [SECONDS]

Prints the scenario's jobs/s and CPU ms per job, the gateway's projection-writes and consumer
counters, and each process's top functions by own time; py-spy's raw stacks (one file per
process, flamegraph input) stay under bench/results/profile-<time>/.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from .common import ROOT, start_bench, stop_bench
from .scenarios import throughput


async def main(n: int, seconds: int) -> None:
    out = ROOT / "bench" / "results" / f"profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True)
    bench = await start_bench()
    try:
        spies = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    "50",
                    "--format",
                    "raw",
                    "--output",
                    str(out / f"{name}.txt"),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in bench.service_pids().items()
            if name not in ("broker", "prometheus")
        ]
        result = await throughput.run(bench, n)
        for spy in spies:
            spy.wait()
        result.pop("ids")
        print(json.dumps(result, indent=1))
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{bench.stack.gateway_url}/metrics")).text
        print(
            "\n".join(
                line
                for line in metrics.splitlines()
                if line.startswith(
                    (
                        "sitewright_projection_writes_total",
                        "sitewright_events_handled_total",
                        "sitewright_messages_received",
                    )
                )
            )
        )
    finally:
        await stop_bench(bench)
    for f in sorted(out.glob("*.txt")):
        own: dict[str, int] = {}
        total = 0
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            leaf = stack.split(";")[-1]
            own[leaf] = own.get(leaf, 0) + int(count)
            total += int(count)
        print(f"\n== {f.stem}: {total} samples")
        for leaf, c in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
            print(f"{100 * c / max(total, 1):5.1f}%  {leaf}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 30))
