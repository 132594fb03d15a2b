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
from dataclasses import dataclass
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


class CpuWindow:
    """CPU used over a measured window: Sitewright's processes, the harness's and others counted apart.

    The harness: this process (`getrusage(RUSAGE_SELF)`, its polls included), its children that exited in the
    window (`RUSAGE_CHILDREN`: the load generator's whole process) and `harness_pids` (the idle test site).
    `apart_pids`: processes that are neither (the fake servers of Tier C), each reported on its own. The rest of
    the machine's CPU (`/proc/stat`) is `foreign` in the busy cores."""

    def __init__(self, bench: Bench, harness_pids: Mapping[str, int], apart_pids: Mapping[str, int] | None = None):
        self.bench = bench
        self.harness_pids = dict(harness_pids)
        self.apart_pids = dict(apart_pids or {})
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        return {
            "stack": self.bench.cpu(),
            "self": own_cpu_s(),
            "children": own_cpu_s(resource.RUSAGE_CHILDREN),
            "harness": {k: cpu_s(p) for k, p in self.harness_pids.items()},
            "apart": {k: cpu_s(p) for k, p in self.apart_pids.items()},
            "machine": machine_busy_s(),
        }

    def open(self) -> None:
        self.before = self._read()

    def close(self) -> None:
        self.after = self._read()

    def figures(self, completed: int) -> dict[str, Any]:
        """CPU ms per completed job by process (Sitewright's, the harness's, each apart) and busy cores."""
        b, a = self.before, self.after
        stack_spent = {k: v for k, v in cpu_spent(b["stack"], a["stack"]).items() if k != "prometheus"}
        harness_spent = {
            "bench": a["self"] - b["self"],
            "loadgen": a["children"] - b["children"],  # its whole process, start-up included
            **cpu_spent(b["harness"], a["harness"]),
        }
        apart_spent = cpu_spent(b["apart"], a["apart"])
        wall = a["machine"][1] - b["machine"][1]
        machine = (a["machine"][0] - b["machine"][0]) / wall
        ours = sum(stack_spent.values()) / wall
        harness = sum(harness_spent.values()) / wall
        apart = {k: v / wall for k, v in apart_spent.items()}
        out: dict[str, Any] = {
            "cpu_ms_per_job": per_job_ms(stack_spent, completed),
            "harness_cpu_ms_per_job": per_job_ms(harness_spent, completed),
        }
        out |= {f"{k}_cpu_ms_per_job": round(v * 1000 / max(completed, 1), 2) for k, v in apart_spent.items()}
        out["busy_cores"] = {
            "machine": round(machine, 2),
            "sitewright": round(ours, 2),
            "harness": round(harness, 2),
            **{k: round(v, 2) for k, v in apart.items()},
            "foreign": round(machine - ours - harness - sum(apart.values()), 2),
        }
        return out


@dataclass
class Submitted:
    """What the load generator's bulk phase accepted, and when its requests went and came back."""

    phase: dict[str, Any]
    ids: list[str]
    first_sent: float
    submitted: float


async def submit(
    bench: Bench, n: int, item: Mapping[str, Any], chunk: int, concurrency: int, timeout_s: float
) -> Submitted:
    """POST `n` copies of `item` to `/api/jobs/bulk` from the load generator process."""
    started = time.time()
    [phase] = await bench.load(
        [{"kind": "bulk", "n": n, "chunk": chunk, "concurrency": concurrency, "item": dict(item)}], timeout_s=timeout_s
    )
    return Submitted(
        phase=phase,
        ids=phase["ids"],
        first_sent=min((r[0] for r in phase["requests"]), default=started),
        submitted=max((r[0] + r[1] for r in phase["requests"]), default=time.time()),
    )


@dataclass
class Polled:
    """How the wait for completion went: polls made, jobs counted, and the last poll that counted one unfinished
    (when it started and how many it counted), from which the read model's end is looked up after the run."""

    polls: int
    done: int
    unfinished_at: float
    done_then: int
    seen_all: float


async def poll_completed(bench: Bench, baseline: int, n: int, since: float, deadline: float) -> Polled:
    """Count completed jobs at most once per `POLL_S` until `n` more than `baseline` or the (monotonic) deadline."""
    polls, done = 0, 0
    unfinished_at, done_then = since, 0
    while True:
        poll_started = time.time()
        done = await count_completed(bench) - baseline
        polls += 1
        if done >= n or time.monotonic() > deadline:
            break
        unfinished_at, done_then = poll_started, done
        await asyncio.sleep(POLL_S)
    return Polled(polls=polls, done=done, unfinished_at=unfinished_at, done_then=done_then, seen_all=time.time())


async def read_model_times(bench: Bench, ids: list[str], polled: Polled) -> dict[str, Any]:
    """After the run: the submitted jobs' documents and when the read model showed each completed.

    Keys as Tier A reports them, plus `measured` and `by_event` (`throughput_from_documents` of the read model's
    end and of the events' own times)."""
    wanted = set(ids)
    docs = [
        d async for d in bench.jobs.find({}, {"status": 1, "created_at": 1, "finished_at": 1}) if d["_id"] in wanted
    ]
    by_event = throughput_from_documents(docs)
    completed = by_event["completed"]
    # The read model's end: every job the last unfinished poll had not counted completed after it started.
    try:
        late = await completions_since(bench, polled.unfinished_at, wanted)
        oplog_error = None
    except Exception as exc:  # the oplog no longer reaches back there (a capped history): say so, fall back
        late, oplog_error = {}, repr(exc)
    from_oplog = oplog_error is None and len(late) >= completed - polled.done_then
    measured = throughput_from_documents(docs, late) if from_oplog else by_event
    # How long after the last job.completed event the read model showed the last job completed.
    lag = round(measured["last_completed_at"] - by_event["last_completed_at"], 3) if from_oplog and completed else None
    statuses: dict[str, int] = {}
    for d in docs:
        statuses[d["status"]] = statuses.get(d["status"], 0) + 1
    return {
        "completed": completed,
        "statuses": statuses,
        "jobs_per_s": measured["jobs_per_s"],
        "window_s": measured["window_s"],
        "end_source": "read model (oplog wallTime)" if from_oplog else "finished_at (event time)",
        "oplog_completions_read": len(late),
        "oplog_error": oplog_error,
        "jobs_per_s_event": by_event["jobs_per_s"],
        "projection_lag_last_s": lag,
        "measured": measured,
        "by_event": by_event,
    }


def report(
    n: int, chunk: int, concurrency: int, sub: Submitted, polled: Polled, times: Mapping[str, Any], cpu: CpuWindow
) -> dict[str, Any]:
    """The figures of a bulk run, as Tier A reports them (Tier C adds its own)."""
    completed = times["completed"]
    accepted_requests = [r for r in sub.phase["requests"] if r[2] == 200]
    return {
        "jobs": n,
        "chunk": chunk,
        "concurrency": concurrency,
        "accepted": len(sub.ids),
        "completed": completed,
        "complete": len(sub.ids) == n and completed == n,
        "refused_items": sub.phase["errors"],
        **{k: v for k, v in times.items() if k not in ("completed", "measured", "by_event")},
        "jobs_per_s_polled": round(completed / (polled.seen_all - sub.first_sent), 1) if completed else 0.0,
        "submit_per_s": round(len(sub.ids) / (sub.submitted - sub.first_sent), 1),
        "bulk_request_ms_median": _median_ms([r[1] for r in accepted_requests]),
        "polls": polled.polls,
        **cpu.figures(completed),
    }


async def settle(bench: Bench) -> int:
    """Close the warm-up's change stream (nothing watches the read model from here on); the completed count."""
    await bench.watcher.stop()
    await asyncio.sleep(1)
    return await count_completed(bench)


async def run(
    bench: Bench, n: int, chunk: int = CHUNK, concurrency: int = CONCURRENCY, timeout_s: float | None = None
) -> dict:
    """Submit `n` jobs in bulk, wait for them, measure. The stack must run the no-work stages."""
    timeout_s = timeout_s if timeout_s is not None else 120 + n / 10
    baseline = await settle(bench)
    site = bench.sites["fast"]  # never fetched: the no-work crawler does not crawl
    cpu = CpuWindow(bench, {"site": bench.site_proc.pid})
    cpu.open()
    sub = await submit(bench, n, {"url": site}, chunk, concurrency, timeout_s)
    polled = await poll_completed(bench, baseline, len(sub.ids), sub.first_sent, time.monotonic() + timeout_s)
    cpu.close()
    memory = bench.memory()
    # After the measured window: the documents of the jobs submitted, for their times.
    times = await read_model_times(bench, sub.ids, polled)
    return report(n, chunk, concurrency, sub, polled, times, cpu) | {"rss_mib_after": memory}


def _median_ms(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2] * 1000, 1)
