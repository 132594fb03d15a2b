"""Scenario 2: jobs arriving at a fixed rate (open loop); submit-to-completed latency and projection lag."""

from __future__ import annotations

from ..common import Bench, ms, quantile


def summarize(bench: Bench, requests: list[list], complete: bool) -> dict:
    """Latency from each job's due submit time to the moment the read model showed it completed."""
    ids = [r[3] for r in requests if r[3]]
    latency = [bench.watcher.seen[r[3]] - r[0] for r in requests if r[3] in bench.watcher.seen]
    # Projection lag of the completion: from job.completed being emitted to the read model showing it.
    lag = [bench.watcher.seen[i] - bench.watcher.finished_at[i] for i in ids if i in bench.watcher.finished_at]
    return {
        "jobs": len(requests),
        "completed": len(latency),
        "complete": complete and len(latency) == len(requests),
        "p50_ms": ms(quantile(latency, 0.50)),
        "p95_ms": ms(quantile(latency, 0.95)),
        "p99_ms": ms(quantile(latency, 0.99)),
        "max_ms": ms(max(latency) if latency else None),
        "projection_lag_p99_ms": ms(quantile(lag, 0.99)),
    }


async def run(bench: Bench, rate: float, duration_s: float, timeout_s: float = 300) -> dict:
    [phase] = await bench.load([{"kind": "post", "rate": rate, "duration": duration_s, "site": bench.sites["fast"]}])
    requests = phase["requests"]
    complete = await bench.watcher.wait_for([r[3] for r in requests if r[3]], timeout_s)
    due = sorted(r[0] for r in requests)
    result = summarize(bench, requests, complete)
    result.update(
        rate=rate,
        arrival_per_s=round((len(due) - 1) / (due[-1] - due[0]), 1) if len(due) > 1 else None,
        producer_max_lag_ms=phase["max_lag_ms"],
    )
    return result
