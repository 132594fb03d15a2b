"""Tier A under load: at 80 % of its capacity, then at twice it for 60 s, with admission control on.

The stack is Tier A's (the no-work crawler and generator) with the product's admission limits
(`SITEWRIGHT_ADMISSION_MAX_ACTIVE_PER_TENANT`, `SITEWRIGHT_ADMISSION_MAX_ACTIVE` at their defaults);
`capacity` is the Tier A jobs/s measured just before in the same rep. Each phase runs, from the load
generator process, single `POST /api/jobs` open loop at the phase's rate and `GET /api/jobs/{id}` open loop
at `GET_RATE` on the warm-up's jobs, at the same time.

- POST and GET latencies count from each request's due time (no coordinated omission). A POST answers
  202 (accepted) or 429 (admission control: the tenant or the system holds too much unfinished work);
  their p99s are apart, and `post_p99_ms` is over both.
- Accepted jobs' submit-to-completed latency ends when the read model showed the job completed: the
  `wallTime` of the database's oplog entry, read after the run (no change stream in the window).
- `lost`: jobs answered 202 whose document is not `completed` once the system has drained (`DRAIN_S` past
  the bound admission control puts on the backlog); `not_completed_by_status` says what they show instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from sitewright_gateway.config import GatewaySettings
from sitewright_gateway.readmodel.store import by_ids

from ..common import Bench, ms, quantile
from .framework import completions_since, count_completed, timestamp

GET_RATE = 200.0
DRAIN_S = 120.0


def _p99(requests: list[list], statuses: tuple[int, ...] | None = None) -> float | None:
    return ms(quantile([r[1] for r in requests if statuses is None or r[2] in statuses], 0.99))


def _count(values: Iterable[object]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[str(value)] = out.get(str(value), 0) + 1
    return out


async def phase(bench: Bench, rate: float, duration_s: float, get_ids: list[str], backlog_limit: int) -> dict:
    """One open-loop phase of POSTs at `rate` and GETs at GET_RATE; then wait for the accepted jobs."""
    started = time.time()
    baseline = await count_completed(bench)
    post, get = await bench.load(
        [
            {
                "kind": "parallel",
                "phases": [
                    {"kind": "post", "rate": rate, "duration": duration_s, "site": bench.sites["fast"]},
                    {"kind": "get", "rate": GET_RATE, "duration": duration_s, "ids": get_ids},
                ],
            }
        ],
        timeout_s=duration_s + 300,
    )
    accepted = {r[3]: r[0] for r in post["requests"] if r[2] == 202 and r[3]}
    # Drain: admission control bounds the backlog, so the accepted jobs finish within backlog / capacity.
    deadline = time.monotonic() + DRAIN_S + backlog_limit / max(rate / 2, 1.0)
    while await count_completed(bench) - baseline < len(accepted) and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
    # After the window: each accepted job's document, and when the read model showed it completed (the
    # oplog's wallTime; the job.completed event's own time for entries the oplog no longer holds).
    docs = {d["_id"]: d async for d in by_ids(bench.jobs, list(accepted), {"status": 1, "finished_at": 1})}
    done = {i for i, d in docs.items() if d.get("status") == "completed"}
    try:
        shown = await completions_since(bench, started, done)
    except Exception:  # the oplog no longer reaches back to the phase's start
        shown = {}
    ends = {i: (shown[i] if i in shown else docs[i]["finished_at"]) for i in done}
    latency = [timestamp(ends[i]) - accepted[i] for i in done]
    statuses = _count(str(r[2]) for r in post["requests"])
    posts = len(post["requests"])
    return {
        "rate": round(rate, 1),
        "duration_s": duration_s,
        "posts": posts,
        "post_statuses": statuses,
        "share_429": round(statuses.get("429", 0) / max(posts, 1), 3),
        "post_p99_ms": _p99(post["requests"]),
        "post_202_p99_ms": _p99(post["requests"], (202,)),
        "post_429_p99_ms": _p99(post["requests"], (429,)),
        "get_p99_ms": _p99(get["requests"]),
        "get_errors": sum(1 for r in get["requests"] if r[2] != 200),
        "accepted": len(accepted),
        "completed": len(done),
        "lost": len(accepted) - len(done),
        "not_completed_by_status": _count(d.get("status") for i, d in docs.items() if i not in done),
        "ends_from_oplog": len(shown),
        "submit_to_completed_p50_ms": ms(quantile(latency, 0.5)),
        "submit_to_completed_p99_ms": ms(quantile(latency, 0.99)),
        "submit_to_completed_max_ms": ms(max(latency) if latency else None),
        "loadgen_max_lag_ms": max(post["max_lag_ms"], get["max_lag_ms"]),
    }


async def run(bench: Bench, capacity: float, *, at_80_s: float = 30.0, overload_s: float = 60.0) -> dict:
    """80 % of `capacity` for `at_80_s`, then twice `capacity` for `overload_s`; both with GETs beside."""
    get_ids = list(bench.watcher.seen)  # the warm-up's jobs
    await bench.watcher.stop()  # no change stream in the measured windows
    limit = GatewaySettings.model_fields["admission_max_active_per_tenant"].default  # the stack runs the default
    at_80 = await phase(bench, 0.8 * capacity, at_80_s, get_ids, limit)
    overload = await phase(bench, 2.0 * capacity, overload_s, get_ids, limit)
    return {
        "capacity_jobs_per_s": capacity,
        "at_80": at_80,
        "overload": overload,
        "overload_get_p99_ms": overload["get_p99_ms"],
        "overload_post_p99_ms": overload["post_p99_ms"],
        "overload_lost_jobs": overload["lost"],
    }
