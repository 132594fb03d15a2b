"""Tier A, framework cost: N jobs through stages that do no work, as the peers' noop workload runs them.

The stack is the product's (gateway with its projector, read model and audit trail, notifier, broker,
database) with the crawler and the generator of `bench/noop_stages.py`: `start_bench(noop_stages=True)`.
What is left is what Sitewright itself costs per job: the API, the log, the consumers, the read model.

- Submit: the load generator process POSTs the N jobs to `/api/jobs/bulk`, `CHUNK` jobs a request and
  `CONCURRENCY` requests at once. With 100 jobs a request and one request at a time, 100 jobs are in
  flight at the gateway, as the peers' BullMQ producer awaits its adds in chunks of 100 (the Python
  peers add one job after the other).
- Completion: a count of the `completed` jobs, at most once per `POLL_S`, once the submission is done.
  No change stream runs in the measured window (its cost would be the database's and the harness's).
- Times, all read after the run: `created_at` of each job document is the gateway's time of its request
  (taken as it accepts the item, as the peers' producer stamps t0 just before its write). The end is
  when the read model shows the last job completed, as the peers' end is their last status write: the
  database's own stamp of that write (`wallTime` of its oplog entry, in milliseconds), read through a
  change stream opened after the run at a second before the last poll that still counted a job
  unfinished. `jobs_per_s` = completed / (that end - first `created_at`).
  `jobs_per_s_event` ends at the last `finished_at` instead, the `job.completed` event's own time, before
  the projector writes it (it leaves out the projection of the last events); it is also the fallback
  when the oplog no longer holds the end (`end_source` says which one `jobs_per_s` used).
- CPU: Sitewright's by process (`Bench.cpu()` before the first request and after the last poll), per
  completed job; the harness's apart (this process and its polls, the load generator's whole process, the
  idle test site) and the rest of the machine's (`/proc/stat`) as busy cores over the same window.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import Timestamp

from ..common import Bench, cpu_s, cpu_spent

CHUNK = int(os.environ.get("BENCH_TIER_A_CHUNK", 100))
CONCURRENCY = int(os.environ.get("BENCH_TIER_A_CONCURRENCY", 1))
POLL_S = 1.0


def throughput_from_documents(
    docs: Iterable[Mapping[str, Any]], completed_at: Mapping[str, datetime | float] | None = None
) -> dict[str, Any]:
    """jobs/s of the completed jobs among `docs` (job documents with `_id`, status, created_at, finished_at).

    The window runs from the first `created_at` to the last completion: `completed_at[job id]` (when the
    read model showed it) where given, else the document's `finished_at`."""
    completed = [d for d in docs if d.get("status") == "completed" and d.get("finished_at") is not None]
    if not completed:
        return {"completed": 0, "jobs_per_s": 0.0, "window_s": None}
    first = min(timestamp(d["created_at"]) for d in completed)
    ends = [timestamp(d["finished_at"]) for d in completed]
    if completed_at:
        ends += [timestamp(t) for t in completed_at.values()]
    last = max(ends)
    window = last - first
    return {
        "completed": len(completed),
        "jobs_per_s": round(len(completed) / window, 1) if window > 0 else None,
        "window_s": round(window, 3),
        "first_created_at": first,
        "last_completed_at": last,
    }


def timestamp(value: datetime | float) -> float:
    # pymongo gives naive UTC datetimes unless the client is tz-aware; both mean UTC here.
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def per_job_ms(spent_s: Mapping[str, float], jobs: int) -> dict[str, float]:
    """CPU seconds by process -> CPU ms per job, with their total."""
    out = {name: round(s * 1000 / max(jobs, 1), 2) for name, s in spent_s.items()}
    out["total"] = round(sum(out.values()), 2)
    return out


def machine_busy_s() -> tuple[float, float]:
    """(non-idle CPU seconds of the whole machine, wall seconds) from /proc/stat, for busy cores over a window."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK"), time.monotonic()


def own_cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    """CPU seconds of this process, or (RUSAGE_CHILDREN) of its children that have exited and been waited for:
    during a run, the load generator alone (the stack's processes and the site are waited for at the end)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def count_completed(bench: Bench) -> int:
    return await bench.jobs.count_documents({"status": "completed"})


def turned_completed(change: Mapping[str, Any]) -> bool:
    """Whether a change event on `jobs` wrote `status: completed` (an update, or a pipeline update the
    database reports as a replace)."""
    if change.get("operationType") == "update":
        return (change.get("updateDescription") or {}).get("updatedFields", {}).get("status") == "completed"
    if change.get("operationType") == "replace":
        return (change.get("fullDocument") or {}).get("status") == "completed"
    return False


async def completions_since(bench: Bench, since: float, wanted: set[str]) -> dict[str, datetime]:
    """When each job of `wanted` was first written completed from `since` (a Unix time) on: the `wallTime`
    of the database's oplog entries, replayed by a change stream opened now (after the run) at `since`."""
    start = Timestamp(max(int(since) - 1, 0), 0)
    pipeline = [{"$match": {"operationType": {"$in": ["update", "replace"]}}}]
    seen: dict[str, datetime] = {}
    async with await bench.jobs.watch(pipeline, start_at_operation_time=start, max_await_time_ms=200) as stream:
        while (change := await stream.try_next()) is not None:
            job_id = change["documentKey"]["_id"]
            if job_id in wanted and job_id not in seen and turned_completed(change):
                seen[job_id] = change["wallTime"]
    return seen


async def run(
    bench: Bench, n: int, chunk: int = CHUNK, concurrency: int = CONCURRENCY, timeout_s: float | None = None
) -> dict:
    """Submit `n` jobs in bulk, wait for them, measure. The stack must run the no-work stages."""
    timeout_s = timeout_s if timeout_s is not None else 120 + n / 10
    await bench.watcher.stop()  # the warm-up's change stream: nothing watches the read model from here on
    await asyncio.sleep(1)
    baseline = await count_completed(bench)
    site = bench.sites["fast"]  # never fetched: the no-work crawler does not crawl
    harness_pids = {"site": bench.site_proc.pid}

    cpu_before, harness_before, loadgen_before = bench.cpu(), own_cpu_s(), own_cpu_s(resource.RUSAGE_CHILDREN)
    site_before = {k: cpu_s(p) for k, p in harness_pids.items()}
    machine_before = machine_busy_s()
    started = time.time()
    [phase] = await bench.load(
        [{"kind": "bulk", "n": n, "chunk": chunk, "concurrency": concurrency, "item": {"url": site}}],
        timeout_s=timeout_s,
    )
    ids: list[str] = phase["ids"]
    first_sent = min((r[0] for r in phase["requests"]), default=started)
    submitted = max((r[0] + r[1] for r in phase["requests"]), default=time.time())
    deadline = time.monotonic() + timeout_s
    polls, done = 0, 0
    # The last poll that counted a job unfinished: when it started and how many it counted.
    unfinished_at, done_then = first_sent, 0
    while True:
        poll_started = time.time()
        done = await count_completed(bench) - baseline
        polls += 1
        if done >= len(ids) or time.monotonic() > deadline:
            break
        unfinished_at, done_then = poll_started, done
        await asyncio.sleep(POLL_S)
    seen_all = time.time()
    cpu_after, harness_after, loadgen_after = bench.cpu(), own_cpu_s(), own_cpu_s(resource.RUSAGE_CHILDREN)
    site_after = {k: cpu_s(p) for k, p in harness_pids.items()}
    machine_after = machine_busy_s()
    memory = bench.memory()

    # After the measured window: the documents of the jobs submitted, for their times.
    wanted = set(ids)
    docs = [
        d async for d in bench.jobs.find({}, {"status": 1, "created_at": 1, "finished_at": 1}) if d["_id"] in wanted
    ]
    by_event = throughput_from_documents(docs)
    completed = by_event["completed"]
    # The read model's end: every job the last unfinished poll had not counted completed after it started.
    try:
        late = await completions_since(bench, unfinished_at, wanted)
        oplog_error = None
    except Exception as exc:  # the oplog no longer reaches back there (a capped history): say so, fall back
        late, oplog_error = {}, repr(exc)
    from_oplog = oplog_error is None and len(late) >= completed - done_then
    measured = throughput_from_documents(docs, late) if from_oplog else by_event
    # How long after the last job.completed event the read model showed the last job completed.
    lag = round(measured["last_completed_at"] - by_event["last_completed_at"], 3) if from_oplog and completed else None
    statuses: dict[str, int] = {}
    for d in docs:
        statuses[d["status"]] = statuses.get(d["status"], 0) + 1

    stack_spent = {k: v for k, v in cpu_spent(cpu_before, cpu_after).items() if k != "prometheus"}
    harness_spent = {
        "bench": harness_after - harness_before,
        "loadgen": loadgen_after - loadgen_before,  # its whole process, start-up included
        **cpu_spent(site_before, site_after),
    }
    wall = machine_after[1] - machine_before[1]
    machine = (machine_after[0] - machine_before[0]) / wall
    ours = sum(stack_spent.values()) / wall
    harness = sum(harness_spent.values()) / wall
    accepted_requests = [r for r in phase["requests"] if r[2] == 200]
    return {
        "jobs": n,
        "chunk": chunk,
        "concurrency": concurrency,
        "accepted": len(ids),
        "completed": completed,
        "complete": len(ids) == n and completed == n,
        "statuses": statuses,
        "refused_items": phase["errors"],
        "jobs_per_s": measured["jobs_per_s"],
        "window_s": measured["window_s"],
        "end_source": "read model (oplog wallTime)" if from_oplog else "finished_at (event time)",
        "oplog_completions_read": len(late),
        "oplog_error": oplog_error,
        "jobs_per_s_event": by_event["jobs_per_s"],
        "projection_lag_last_s": lag,
        "jobs_per_s_polled": round(completed / (seen_all - first_sent), 1) if completed else 0.0,
        "submit_per_s": round(len(ids) / (submitted - first_sent), 1),
        "bulk_request_ms_median": _median_ms([r[1] for r in accepted_requests]),
        "polls": polls,
        "cpu_ms_per_job": per_job_ms(stack_spent, completed),
        "harness_cpu_ms_per_job": per_job_ms(harness_spent, completed),
        "busy_cores": {
            "machine": round(machine, 2),
            "sitewright": round(ours, 2),
            "harness": round(harness, 2),
            "foreign": round(machine - ours - harness, 2),
        },
        "rss_mib_after": memory,
    }


def _median_ms(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2] * 1000, 1)
