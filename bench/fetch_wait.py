"""How the consumers' fetch wait trades CPU for latency on the embedded broker.

    python -m bench.fetch_wait [N] [ROUNDS] [WAIT_MS ...]    # defaults: 1000 jobs, 2 rounds, 10 50 100 250

For each wait (`SITEWRIGHT_FETCH_MAX_WAIT_MS`), interleaved round by round, on a fresh stack: every
process's idle CPU over 10 s, submit-to-completed p50/p99 at 20 jobs/s for 10 s, then scenario 1
with N jobs (jobs/s, CPU ms per job). One JSON line per run.
"""

from __future__ import annotations

import json
import sys

from sitewright_runtime.loop import run

from .common import start_bench, stop_bench
from .scenarios import latency, memory, throughput


async def one(wait_ms: int, n: int) -> dict:
    bench = await start_bench({"SITEWRIGHT_FETCH_MAX_WAIT_MS": str(wait_ms)})
    try:
        idle = await memory.idle_cpu(bench)
        light = await latency.run(bench, 20, 10)
        result = await throughput.run(bench, n)
        return {
            "fetch_max_wait_ms": wait_ms,
            "cpu_idle_pct": idle,
            "p50_ms_at_20": light["p50_ms"],
            "p99_ms_at_20": light["p99_ms"],
            "jobs_per_s": result["jobs_per_s"],
            "cpu_ms_per_job": result["cpu_ms_per_job"],
        }
    finally:
        await stop_bench(bench)


async def main(n: int, rounds: int, waits: list[int]) -> None:
    for _ in range(rounds):
        for wait_ms in waits:
            print(json.dumps(await one(wait_ms, n)), flush=True)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    run(main(args[0] if args else 1000, args[1] if len(args) > 1 else 2, args[2:] or [10, 50, 100, 250]))
