"""Scenario 1: N jobs submitted as fast as the API accepts them; jobs/s from first submit to last completed."""

from __future__ import annotations

from ..common import Bench


async def run(bench: Bench, n: int, concurrency: int = 32, timeout_s: float = 600) -> dict:
    [phase] = await bench.load([{"kind": "post", "n": n, "concurrency": concurrency, "site": bench.sites["fast"]}])
    accepted = [r for r in phase["requests"] if r[3]]
    ids = [r[3] for r in accepted]
    complete = await bench.watcher.wait_for(ids, timeout_s)
    first = min(r[0] for r in phase["requests"])
    last_submit = max(r[0] + r[1] for r in phase["requests"])
    done = [bench.watcher.seen[i] for i in ids if i in bench.watcher.seen]
    last = max(done) if done else last_submit
    return {
        "jobs": n,
        "accepted": len(ids),
        "completed": len(done),
        "complete": complete and len(ids) == n,
        "jobs_per_s": round(len(done) / (last - first), 1),
        "submit_per_s": round(len(ids) / (last_submit - first), 1),
        "ids": ids,
    }
