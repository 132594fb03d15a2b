"""Scenario 1: N jobs submitted as fast as the API accepts them; jobs/s from first submit to last completed.

Also the CPU time each process spent per job: on a machine shared with other work, jobs/s
follows the share of the CPU the stack gets, while CPU per job is what the code costs.
"""

from __future__ import annotations

from ..common import Bench, cpu_spent


async def run(bench: Bench, n: int, concurrency: int = 32, timeout_s: float = 600) -> dict:
    cpu_before = bench.cpu()
    [phase] = await bench.load([{"kind": "post", "n": n, "concurrency": concurrency, "site": bench.sites["fast"]}])
    accepted = [r for r in phase["requests"] if r[3]]
    ids = [r[3] for r in accepted]
    complete = await bench.watcher.wait_for(ids, timeout_s)
    first = min(r[0] for r in phase["requests"])
    last_submit = max(r[0] + r[1] for r in phase["requests"])
    done = [bench.watcher.seen[i] for i in ids if i in bench.watcher.seen]
    cpu_after = bench.cpu()
    cpu_ms = {
        name: round(spent * 1000 / max(len(done), 1), 2) for name, spent in cpu_spent(cpu_before, cpu_after).items()
    }
    cpu_ms["total"] = round(sum(cpu_ms.values()), 2)
    last = max(done) if done else last_submit
    return {
        "jobs": n,
        "accepted": len(ids),
        "completed": len(done),
        "complete": complete and len(ids) == n,
        "jobs_per_s": round(len(done) / (last - first), 1),
        "submit_per_s": round(len(ids) / (last_submit - first), 1),
        "cpu_ms_per_job": cpu_ms,
        "ids": ids,
    }
