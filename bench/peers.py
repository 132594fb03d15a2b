"""The peers (BullMQ, Celery, Dramatiq on Redis), run by their own harness, and Sitewright's ratios to them.

The harness lives beside the repository (BENCH_PEERS_DIR, default `../shared/bench/peers` from its root);
its run.sh installs Redis, node and the Python packages outside the repository on first use.
BENCH_PEER_CONFIGS picks its configurations (default: the best of each system as measured
here before: BullMQ c16, Celery prefork-c2, Dramatiq p2-t8).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", ROOT.parent / "shared" / "bench" / "peers"))
CONFIGS = os.environ.get("BENCH_PEER_CONFIGS", "c16,prefork-c2,p2-t8")
SYSTEMS = ("bullmq", "celery", "dramatiq")


def run_peers(out: Path, jobs: int, rate: float, duration_s: float) -> list[dict]:
    """One rep of the peers' throughput and rate scenarios; their per-run results."""
    runs: list[dict] = []
    for scenario, extra in (
        ("throughput", ["--jobs", str(jobs)]),
        ("rate", ["--rate", f"{rate:g}", "--duration", f"{duration_s:g}"]),
    ):
        target = out / scenario
        cmd = [
            str(PEERS_DIR / "run.sh"),
            "--configs",
            CONFIGS,
            "--scenario",
            scenario,
            "--reps",
            "1",
            "--out",
            str(target),
            *extra,
        ]
        code = subprocess.run(cmd).returncode
        summary = target / "summary.json"
        if not summary.exists():
            runs.append({"scenario": scenario, "status": "failed", "error": f"run.sh exited {code} without a summary"})
            continue
        runs += json.loads(summary.read_text())["runs"]
    return runs


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def peer_ratios(summary: dict[str, dict], reps: list[list[dict]]) -> dict:
    """ratio_jobs_per_s_vs_<system> (higher is better for Sitewright) and ratio_p99_vs_<system> (lower is better).

    Each peer system counts with its best configuration by median (highest jobs/s, lowest p99).
    Runs that did not complete are left out of the ratios and listed.
    """
    flat = [r for rep in reps for r in rep]
    ours_tp = (summary.get("throughput.jobs_per_s") or {}).get("median")
    ours_p99 = (summary.get("latency_200.p99_ms") or {}).get("median")
    result: dict = {"peer_medians": {}}
    lines = [
        "| peer | config | jobs/s median | p99 ms at 200/s median | Sitewright / peer jobs/s | Sitewright / peer p99 |",
        "|---|---|---|---|---|---|",
    ]
    for system in SYSTEMS:
        configs = sorted({r["config"] for r in flat if r.get("system") == system})
        best_tp: tuple[float, str] | None = None
        best_p99: tuple[float, str] | None = None
        for config in configs:
            ok = [r for r in flat if r.get("system") == system and r["config"] == config and r.get("status") == "ok"]
            tp = _median([r["jobs_per_s"] for r in ok if r["scenario"] == "throughput"])
            p99 = _median([r["p99_ms"] for r in ok if r["scenario"] == "rate" and r.get("p99_ms") is not None])
            result["peer_medians"][f"{system}/{config}"] = {"jobs_per_s": tp, "p99_ms": p99}
            if tp is not None and (best_tp is None or tp > best_tp[0]):
                best_tp = (tp, config)
            if p99 is not None and (best_p99 is None or p99 < best_p99[0]):
                best_p99 = (p99, config)
            lines.append(
                f"| {system} | {config} | {tp if tp is not None else '–'} | {p99 if p99 is not None else '–'} | | |"
            )
        tp_ratio = round(ours_tp / best_tp[0], 2) if ours_tp and best_tp else None
        p99_ratio = round(ours_p99 / best_p99[0], 2) if ours_p99 and best_p99 else None
        result[f"ratio_jobs_per_s_vs_{system}"] = tp_ratio
        result[f"ratio_p99_vs_{system}"] = p99_ratio
        lines.append(
            f"| **{system} (best)** | {best_tp[1] if best_tp else '–'} / {best_p99[1] if best_p99 else '–'} | "
            f"{best_tp[0] if best_tp else '–'} | {best_p99[0] if best_p99 else '–'} | "
            f"{tp_ratio or '–'} | {p99_ratio or '–'} |"
        )
    bad = [
        f"{r.get('system')}/{r.get('config')} {r.get('scenario')}: {r.get('status')} {r.get('error', '')}".strip()
        for r in flat
        if r.get("status") != "ok"
    ]
    result["peer_problems"] = bad
    result["peers_table"] = "\n".join(lines + ([""] + [f"- not counted: {b}" for b in bad] if bad else []))
    return result
