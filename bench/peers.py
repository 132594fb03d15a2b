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
            "--workload",
            "noop",
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


def _stats(values: list[float]) -> dict:
    """median, min, max and n of `values` (None each when there are none)."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def tier_a_ratios(ours: list[dict | None], reps: list[list[dict]]) -> dict:
    """ratio_noop_jobs_per_s_vs_<system>: Tier A's jobs/s over the peer's noop throughput, rep by rep.

    `ours[i]` is rep i's Tier A result (None or incomplete: that rep counts for no ratio), `reps[i]` the
    peers' runs of the same rep. Each system counts with its best configuration by median over the reps
    (highest jobs/s, as `peer_ratios` picks it); each rep's ratio divides Tier A's jobs/s by that
    configuration's jobs/s in the same rep, so both sides saw the same phase of the machine. The key holds
    the median, min and max of those per-rep ratios, and the ratios themselves (None for a rep left out).
    """
    result: dict = {}
    lines = [
        "| Tier A (no-work stages) vs peer, noop throughput | config | peer jobs/s median "
        "| Tier A / peer, median (min–max) | per rep |",
        "|---|---|---|---|---|",
    ]
    for system in SYSTEMS:
        ok = [
            [
                r
                for r in rep
                if r.get("system") == system and r.get("scenario") == "throughput" and r.get("status") == "ok"
            ]
            for rep in reps
        ]
        configs = sorted({r["config"] for rep in ok for r in rep})
        medians = {c: _median([r["jobs_per_s"] for rep in ok for r in rep if r["config"] == c]) for c in configs}
        best = max(configs, key=lambda c: medians[c] or 0.0, default=None)
        per_rep: list[float | None] = []
        for i, rep in enumerate(ok):
            mine = ours[i] if i < len(ours) else None
            peer = next((r["jobs_per_s"] for r in rep if r["config"] == best), None)
            if mine and mine.get("complete") and mine.get("jobs_per_s") and peer:
                per_rep.append(round(mine["jobs_per_s"] / peer, 3))
            else:
                per_rep.append(None)
        stats = _stats([r for r in per_rep if r is not None])
        result[f"ratio_noop_jobs_per_s_vs_{system}"] = stats | {"config": best, "per_rep": per_rep}
        cell = f"{stats['median']:.2f} ({stats['min']:.2f}–{stats['max']:.2f})" if stats["n"] else "–"
        reps_cell = ", ".join("–" if r is None else f"{r:.2f}" for r in per_rep)
        peer_cell = medians.get(best) if best else None
        lines.append(
            f"| {system} | {best or '–'} | {peer_cell if peer_cell is not None else '–'} | {cell} | {reps_cell} |"
        )
    result["tier_a_peers_table"] = "\n".join(lines)
    return result
