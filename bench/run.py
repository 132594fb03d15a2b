"""Sitewright's benchmark: `make bench` (all scenarios) and `make bench-peers` (beside BullMQ, Celery, Dramatiq).

    python -m bench.run [--runs K] [--quick] [--peers | --tier-a-only | --tier-c-only] [--peer-jobs N]
                        [--llm-jobs N] [--out DIR]

Each run starts a fresh embedded stack (free ports, data in a temporary folder), warms it up
with 50 jobs, runs the scenarios in a fixed order and stops it. Cells are median (min-max)
over the runs. BENCH_RUNS and BENCH_QUICK=1 set --runs and --quick from the environment.
`--peers` also runs Tier A (framework cost: the no-work stages of `bench/noop_stages.py`) on a
fresh stack per rep, beside the peers' noop throughput, and Tier C (the LLM-bound workload: the default
stack against the peers' fake servers, `bench/scenarios/llm_bound.py`) beside the peers' llm throughput;
`--tier-a-only` and `--tier-c-only` run one tier alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from .common import ROOT, start_bench, stop_bench
from .peers import (
    LLM_CONFIGS,
    PEERS_DIR,
    LlmKnobs,
    peer_ratios,
    run_peers,
    run_peers_llm,
    tier_a_ratios,
    tier_c_ratios,
)
from .scenarios import api, framework, head_of_line, latency, llm_bound, memory, overload, projection, throughput

SERVICES = ("gateway", "crawler", "generator", "notifier", "broker", "mongodb")


def cpu_rows(key: str, label: str) -> list[tuple[str, str, str]]:
    """The rows of `key`'s CPU ms per job, in all and by process."""
    return [(f"{key}.cpu_ms_per_job.{s}", f"{label} CPU ms per job: {s}", "") for s in ("total", *SERVICES)]


# (flattened metric key, label, target as text) in the order the table shows them.
ROWS = [
    ("throughput.jobs_per_s", "1 end-to-end jobs/s", "> Dramatiq, Celery; >= BullMQ/2"),
    ("throughput.submit_per_s", "1 POST accepted/s during the burst", ""),
    *cpu_rows("throughput", "1"),
    ("latency_50.p50_ms", "2 at 50 jobs/s: p50 ms", ""),
    ("latency_50.p95_ms", "2 at 50 jobs/s: p95 ms", ""),
    ("latency_50.p99_ms", "2 at 50 jobs/s: p99 ms", ""),
    ("latency_200.p50_ms", "2 at 200 jobs/s: p50 ms", ""),
    ("latency_200.p95_ms", "2 at 200 jobs/s: p95 ms", ""),
    ("latency_200.p99_ms", "2 at 200 jobs/s: p99 ms", "< 250"),
    ("latency_200.arrival_per_s", "2 at 200 jobs/s: achieved arrivals/s", ""),
    ("api.post.p50_ms", "3 POST /api/jobs at 200/s: p50 ms", ""),
    ("api.post.p99_ms", "3 POST /api/jobs at 200/s: p99 ms", "< 15"),
    ("api.get.p50_ms", "3 GET /api/jobs/{id} at 500/s: p50 ms", ""),
    ("api.get.p99_ms", "3 GET /api/jobs/{id} at 500/s: p99 ms", "< 5"),
    ("projection.events_per_s", "4 projector events/s (pre-filled topic)", ">= 5000"),
    ("latency_200.projection_lag_p99_ms", "4 projection lag p99 ms (during 2 at 200/s)", ""),
    ("head_of_line.p99_ms", "5 head-of-line: 200 jobs behind a 20 s site, p99 ms", "<= 1.2 x scenario 2"),
    ("head_of_line.p99_vs_latency_200", "5 head-of-line p99 / scenario 2 p99", "<= 1.2"),
]
ROWS += [
    (f"memory_idle.{s}", f"6 RSS MiB idle: {s}", "< 100" if s not in ("broker", "mongodb") else "") for s in SERVICES
]
ROWS += [(f"memory_after_1.{s}", f"6 RSS MiB after scenario 1: {s}", "") for s in SERVICES]
ROWS += [(f"cpu_idle_pct.{s}", f"6 CPU % of a core idle: {s}", "") for s in SERVICES]
# Tier A: the product's stack with the no-work crawler and generator, jobs submitted in bulk.
TIER_A_ROWS = [
    ("tier_a.jobs_per_s", "A no-work stages: jobs/s (first request to last completed in the read model)", ""),
    ("tier_a.jobs_per_s_event", "A no-work stages: jobs/s (to the last job.completed event's time)", ""),
    ("tier_a.projection_lag_last_s", "A read model behind the last job.completed event, s", ""),
    ("tier_a.submit_per_s", "A bulk POST: jobs accepted/s", ""),
    *cpu_rows("tier_a", "A"),
    ("tier_a.harness_cpu_ms_per_job.total", "A harness CPU ms per job (not Sitewright's)", ""),
    ("tier_a.busy_cores.foreign", "A busy cores, other load on the machine", ""),
    *[(f"tier_a.rss_mib_after.{s}", f"A RSS MiB after: {s}", "") for s in SERVICES],
]

# Tier C: the default stack (real crawler, OpenAI-compatible generator) against the peers' fake servers.
TIER_C_ROWS = [
    ("tier_c.jobs_per_s", "C LLM-bound: jobs/s (first request to the later of last completion and last webhook)", ""),
    ("tier_c.jobs_per_s_read_model", "C LLM-bound: jobs/s (to the last completion in the read model)", ""),
    ("tier_c.webhooks_after_read_model_s", "C last webhook after the read model's last completion, s", ""),
    ("tier_c.llm_peak_in_flight", "C peak LLM calls in flight (the fake LLM's count)", ""),
    ("tier_c.llm_in_flight_sampled.mean", "C LLM calls in flight, mean of 0.5 s samples over the window", ""),
    ("tier_c.submit_per_s", "C bulk POST: jobs accepted/s", ""),
    *cpu_rows("tier_c", "C"),
    ("tier_c.fakes_cpu_ms_per_job", "C fake servers' CPU ms per job (not Sitewright's)", ""),
    ("tier_c.harness_cpu_ms_per_job.total", "C harness CPU ms per job (not Sitewright's)", ""),
    ("tier_c.busy_cores.foreign", "C busy cores, other load on the machine", ""),
    ("tier_c.fakes_stats.robots_gets", "C robots.txt reads (not in the peers' work)", ""),
    ("tier_c.fakes_stats.sitemap_gets", "C sitemap.xml reads (not in the peers' work)", ""),
    *[(f"tier_c.peak_rss_mib.{s}", f"C peak RSS MiB: {s}", "") for s in (*SERVICES, "total")],
]

# Tier A's stack under load with admission control on: 80 % of the Tier A capacity measured before, then 2x.
OVERLOAD_ROWS = [
    ("overload.at_80.post_p99_ms", "O at 80 % of Tier A capacity: POST p99 ms", "< 15"),
    ("overload.at_80.get_p99_ms", "O at 80 %: GET p99 ms", "< 5"),
    ("overload.at_80.submit_to_completed_p99_ms", "O at 80 %: submit-to-completed p99 ms", "< 250"),
    ("overload.overload.rate", "O at 2x: POSTs/s offered", ""),
    ("overload.overload_post_p99_ms", "O at 2x: POST p99 ms (202 and 429)", "< 25 or 429"),
    ("overload.overload.post_202_p99_ms", "O at 2x: POST p99 ms of the 202s", ""),
    ("overload.overload.post_429_p99_ms", "O at 2x: POST p99 ms of the 429s", ""),
    ("overload.overload.share_429", "O at 2x: share of POSTs answered 429", ""),
    ("overload.overload_get_p99_ms", "O at 2x: GET p99 ms", "< 25"),
    ("overload.overload.submit_to_completed_p99_ms", "O at 2x: accepted jobs' submit-to-completed p99 ms", ""),
    ("overload.overload_lost_jobs", "O at 2x: accepted jobs lost", "0"),
]


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            flat[f"{prefix}{key}"] = value
    return flat


def summarize(runs: list[dict]) -> dict[str, dict]:
    """median, min and max of every numeric metric over the runs."""
    flats = [flatten(r) for r in runs]
    keys = sorted({k for f in flats for k in f})
    out = {}
    for key in keys:
        values = [f[key] for f in flats if isinstance(f.get(key), (int, float)) and not isinstance(f.get(key), bool)]
        if values:
            out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
    return out


def cell(stat: dict | None) -> str:
    if not stat:
        return "–"
    f = (lambda v: f"{v:,.0f}") if abs(stat["median"]) >= 100 else (lambda v: f"{v:,.2f}".rstrip("0").rstrip("."))
    if stat["n"] == 1:
        return f"{f(stat['median'])}"
    return f"{f(stat['median'])} ({f(stat['min'])}–{f(stat['max'])})"


def table(summary: dict[str, dict], rows: list[tuple[str, str, str]]) -> str:
    lines = ["| scenario / metric | median (min–max) | target |", "|---|---|---|"]
    lines += [f"| {label} | {cell(summary.get(key))} | {target} |" for key, label, target in rows if key in summary]
    return "\n".join(lines)


class Plan:
    """Sizes of the scenarios; quick mode shrinks them for development (the numbers are then only a check)."""

    def __init__(self, quick: bool):
        self.quick = quick
        self.jobs = int(os.environ.get("BENCH_JOBS", 500 if quick else 2000))
        self.rate_duration_s = float(os.environ.get("BENCH_RATE_S", 10 if quick else 30))
        self.api_duration_s = float(os.environ.get("BENCH_API_S", 5 if quick else 15))
        # Tier C and the peers' llm workload (their --quick runs 200 jobs; their default 2,000).
        self.llm_jobs = int(os.environ.get("BENCH_LLM_JOBS", 300 if quick else 2000))
        self.llm_warmup = int(os.environ.get("BENCH_TIER_C_WARMUP", 50 if quick else llm_bound.WARMUP))


async def one_run(plan: Plan, index: int) -> dict:
    """All six scenarios on one fresh stack."""
    bench = await start_bench()
    result: dict = {"run": index, "started_at": datetime.now(UTC).isoformat()}
    try:
        await asyncio.sleep(2)  # idle: nothing submitted since the warm-up finished
        result["memory_idle"] = memory.snapshot(bench)
        result["cpu_idle_pct"] = await memory.idle_cpu(bench)
        print(f"run {index}: scenario 1 ({plan.jobs} jobs)", flush=True)
        tp = await throughput.run(bench, plan.jobs)
        result["memory_after_1"] = memory.snapshot(bench)
        ids = tp.pop("ids")
        result["throughput"] = tp
        print(f"run {index}: scenario 4 (projector over the filled topic)", flush=True)
        result["projection"] = await projection.run(bench)
        for rate in (50, 200):
            print(f"run {index}: scenario 2 ({rate} jobs/s for {plan.rate_duration_s:g} s)", flush=True)
            result[f"latency_{rate}"] = await latency.run(bench, rate, plan.rate_duration_s)
        print(f"run {index}: scenario 5 (head-of-line)", flush=True)
        hol = await head_of_line.run(bench)
        if hol["p99_ms"] and result["latency_200"]["p99_ms"]:
            hol["p99_vs_latency_200"] = round(hol["p99_ms"] / result["latency_200"]["p99_ms"], 2)
        result["head_of_line"] = hol
        print(f"run {index}: scenario 3 (API)", flush=True)
        result["api"] = await api.run(bench, ids, plan.api_duration_s)
        result["failed_services"] = bench.stack.failed()
    finally:
        await stop_bench(bench)
    return result


async def peers_run(plan: Plan, index: int, peer_jobs: int, out: Path, knobs: LlmKnobs) -> dict:
    """Scenarios 1 and 2 (200 jobs/s) on a fresh stack, sized as the peers are; Tier A; then the peers' same two.
    Then Tier C and the peers' llm throughput with the same knobs."""
    bench = await start_bench()
    result: dict = {"run": index, "started_at": datetime.now(UTC).isoformat()}
    try:
        print(f"peers run {index}: Sitewright throughput ({peer_jobs} jobs)", flush=True)
        tp = await throughput.run(bench, peer_jobs)
        tp.pop("ids")
        result["throughput"] = tp
        print(f"peers run {index}: Sitewright at 200 jobs/s for {plan.rate_duration_s:g} s", flush=True)
        result["latency_200"] = await latency.run(bench, 200, plan.rate_duration_s)
    finally:
        await stop_bench(bench)
    print(f"peers run {index}: Tier A, no-work stages ({peer_jobs} jobs in bulk)", flush=True)
    try:
        result["tier_a"] = await tier_a_run(peer_jobs)
    except Exception as exc:  # this rep has no Tier A figures (no ratio); the peers and the other reps still run
        print(f"peers run {index}: Tier A failed: {exc!r}", flush=True)
        result["tier_a"] = {"complete": False, "error": repr(exc)}
    print(f"peers run {index}: overload, Tier A's stack with admission control", flush=True)
    result["overload"] = await overload_run(result["tier_a"].get("jobs_per_s"))
    print(f"peers run {index}: BullMQ, Celery, Dramatiq", flush=True)
    result["peers"] = await asyncio.to_thread(run_peers, out / f"peers-{index}", peer_jobs, 200, plan.rate_duration_s)
    print(f"peers run {index}: Tier C, LLM-bound ({plan.llm_jobs} jobs in bulk)", flush=True)
    try:
        result["tier_c"] = await tier_c_run(plan.llm_jobs, knobs, plan.llm_warmup)
    except Exception as exc:  # as for Tier A: no ratio from this rep, the rest still runs
        print(f"peers run {index}: Tier C failed: {exc!r}", flush=True)
        result["tier_c"] = {"complete": False, "error": repr(exc)}
    print(f"peers run {index}: BullMQ, Celery, Dramatiq, llm workload ({plan.llm_jobs} jobs)", flush=True)
    result["peers_llm"] = await asyncio.to_thread(run_peers_llm, out / f"peers-{index}", plan.llm_jobs, knobs)
    return result


async def tier_a_run(jobs: int) -> dict:
    """Tier A on a fresh stack: the product's gateway and notifier, the no-work crawler and generator.

    Prometheus is not started: the peers have no monitoring scraping them, and it is no part of a job."""
    bench = await start_bench(noop_stages=True, prometheus=False)
    try:
        result = await framework.run(bench, jobs)
        result["failed_services"] = bench.stack.failed()
    finally:
        await stop_bench(bench)
    print(
        f"  Tier A: {result['completed']}/{jobs} completed, {result['jobs_per_s']} jobs/s, "
        f"CPU {result['cpu_ms_per_job']['total']} ms per job "
        f"(harness {result['harness_cpu_ms_per_job']['total']} ms apart)",
        flush=True,
    )
    return result


async def tier_c_run(jobs: int, knobs: LlmKnobs, warmup: int) -> dict:
    """Tier C on a fresh stack and fresh fake servers (`llm_bound.tier_c`), with a line on how it went."""
    result = await llm_bound.tier_c(jobs, knobs, warmup)
    short = result.get("calls_short")
    print(
        f"  Tier C: {result['completed']}/{jobs} completed, {result['jobs_per_s']} jobs/s "
        f"(end: {result['end_source']}), "
        f"peak {result['llm_peak_in_flight']} LLM calls in flight, "
        f"honesty check {'short: ' + str(short) if short else 'passed'}, "
        f"CPU {result['cpu_ms_per_job']['total']} ms per job (fakes {result['fakes_cpu_ms_per_job']} ms, "
        f"harness {result['harness_cpu_ms_per_job']['total']} ms apart)",
        flush=True,
    )
    return result


async def overload_run(capacity: float | None) -> dict:
    """Tier A's stack with admission control on, at 80 % and at twice `capacity` (Tier A's jobs/s)."""
    if not capacity:
        return {"error": "no Tier A capacity measured in this rep"}
    bench = await start_bench(noop_stages=True, prometheus=False, admission=True)
    try:
        result = await overload.run(bench, capacity)
        result["failed_services"] = bench.stack.failed()
    finally:
        await stop_bench(bench)
    o = result["overload"]
    print(
        f"  overload at {o['rate']}/s: POST p99 {o['post_p99_ms']} ms ({o['share_429']:.0%} 429), "
        f"GET p99 {o['get_p99_ms']} ms, {o['lost']} accepted jobs lost",
        flush=True,
    )
    return result


def meta(args: argparse.Namespace, plan: Plan) -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "commit": commit + ("-dirty" if dirty else ""),
        "runs": args.runs,
        "quick": plan.quick,
        "jobs": plan.jobs,
        "rate_duration_s": plan.rate_duration_s,
        "api_duration_s": plan.api_duration_s,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_start": load,
        "started_at": datetime.now(UTC).isoformat(),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)))
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    parser.add_argument("--peers", action="store_true", help="scenarios 1 and 2 beside the peers, interleaved")
    parser.add_argument("--peer-jobs", type=int, default=None, help="jobs in the throughput scenario of both sides")
    parser.add_argument("--tier-a-only", action="store_true", help="Tier A alone (no-work stages), no peers")
    parser.add_argument("--tier-c-only", action="store_true", help="Tier C alone (LLM-bound), no peers")
    parser.add_argument("--llm-jobs", type=int, default=None, help="jobs of Tier C and of the peers' llm workload")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    plan = Plan(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict = {"meta": meta(args, plan)}
    started = time.monotonic()
    peer_jobs = args.peer_jobs or int(os.environ.get("BENCH_PEER_JOBS", 2000 if plan.quick else 20000))
    tier_a_meta = {"tier_a_chunk": framework.CHUNK, "tier_a_concurrency": framework.CONCURRENCY}
    plan.llm_jobs = args.llm_jobs or plan.llm_jobs
    knobs = LlmKnobs()
    tier_c_meta = {"llm_jobs": plan.llm_jobs, "tier_c_warmup": plan.llm_warmup, "llm_knobs": knobs.as_dict()}
    if args.peers:
        report["meta"].update(peer_jobs=peer_jobs, peers_dir=str(PEERS_DIR), **tier_a_meta, **tier_c_meta)
        report["meta"]["peer_llm_configs"] = LLM_CONFIGS
        out = args.out / f"peers-{stamp}"
        runs = [await peers_run(plan, i + 1, peer_jobs, out, knobs) for i in range(args.runs)]
        report["runs"] = [{k: v for k, v in r.items() if k not in ("peers", "peers_llm")} for r in runs]
        report["summary"] = summarize(report["runs"])
        report["peers"] = [r["peers"] for r in runs]
        report["peers_llm"] = [r["peers_llm"] for r in runs]
        report.update(peer_ratios(report["summary"], report["peers"]))
        report.update(tier_a_ratios([r.get("tier_a") for r in runs], report["peers"]))
        report.update(tier_c_ratios([r.get("tier_c") for r in runs], report["peers_llm"]))
        name = f"bench-peers-{stamp}.json"
        rows = [r for r in ROWS if r[0].startswith(("throughput.", "latency_200."))]
        rows += TIER_A_ROWS + OVERLOAD_ROWS + TIER_C_ROWS
    elif args.tier_a_only:
        report["meta"].update(tier_a_jobs=peer_jobs, **tier_a_meta)
        report["runs"] = []
        for i in range(args.runs):
            print(f"run {i + 1}: Tier A, no-work stages ({peer_jobs} jobs in bulk)", flush=True)
            started_at = datetime.now(UTC).isoformat()
            tier_a = await tier_a_run(peer_jobs)
            print(f"run {i + 1}: overload, Tier A's stack with admission control", flush=True)
            report["runs"].append(
                {
                    "run": i + 1,
                    "started_at": started_at,
                    "tier_a": tier_a,
                    "overload": await overload_run(tier_a.get("jobs_per_s")),
                }
            )
        report["summary"] = summarize(report["runs"])
        name = f"bench-tier-a-{stamp}.json"
        rows = TIER_A_ROWS + OVERLOAD_ROWS
    elif args.tier_c_only:
        report["meta"].update(peers_dir=str(PEERS_DIR), **tier_c_meta)
        report["runs"] = []
        for i in range(args.runs):
            print(f"run {i + 1}: Tier C, LLM-bound ({plan.llm_jobs} jobs in bulk)", flush=True)
            started_at = datetime.now(UTC).isoformat()
            tier_c = await tier_c_run(plan.llm_jobs, knobs, plan.llm_warmup)
            report["runs"].append({"run": i + 1, "started_at": started_at, "tier_c": tier_c})
        report["summary"] = summarize(report["runs"])
        name = f"bench-tier-c-{stamp}.json"
        rows = TIER_C_ROWS
    else:
        report["runs"] = [await one_run(plan, i + 1) for i in range(args.runs)]
        report["summary"] = summarize(report["runs"])
        name = f"bench-{stamp}.json"
        rows = ROWS
    report["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    path = args.out / name
    path.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(table(report["summary"], rows))
    if args.peers:
        print()
        print(report["peers_table"])
        print()
        print(report["tier_a_peers_table"])
        print()
        print(report["tier_c_peers_table"])
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"\n{args.runs} run(s), {report['meta']['duration_s']:.0f} s; written to {shown}")
    return 0


async def _main() -> int:
    # SIGTERM (a `timeout`, a CI cancel) stops like Ctrl-C: the stack is stopped, not orphaned.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await main()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(_main()))
