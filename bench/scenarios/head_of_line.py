"""Scenario 5: a job whose site answers after 20 s is submitted first, then 200 normal jobs at 200/s.

The normal jobs share partitions with the slow one; with key-level parallel consumption
their latency must not notice it.
"""

from __future__ import annotations

from ..common import Bench
from . import latency


async def run(bench: Bench, normal: int = 200, rate: float = 200, timeout_s: float = 120) -> dict:
    slow, normals = await bench.load(
        [
            {"kind": "post", "n": 1, "concurrency": 1, "site": bench.sites["slow"]},
            {"kind": "post", "rate": rate, "duration": normal / rate, "site": bench.sites["fast"]},
        ]
    )
    requests = normals["requests"]
    complete = await bench.watcher.wait_for([r[3] for r in requests if r[3]], timeout_s)
    result = latency.summarize(bench, requests, complete)
    slow_id = slow["requests"][0][3]
    result["slow_job_done_first"] = slow_id in bench.watcher.seen
    return result
