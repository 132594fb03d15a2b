"""The peers (BullMQ, Celery, Dramatiq on Redis), run by their own harness, and Sitewright's ratios to them.

The harness lives beside the repository (BENCH_PEERS_DIR, default `../shared/bench/peers` from its root);
its run.sh installs Redis, node and the Python packages outside the repository on first use.
BENCH_PEER_CONFIGS picks its configurations (default: the best of each system as measured
here before: BullMQ c16, Celery prefork-c2, Dramatiq p2-t8). Their llm workload (Tier C's peers) runs each
system's documented configuration for I/O-bound work (BENCH_PEER_LLM_CONFIGS, default BullMQ io-c500,
Celery gevent-w2-c250, Dramatiq gevent-p2-t250) with the fake servers' knobs Tier C uses (`LlmKnobs`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", ROOT.parent / "shared" / "bench" / "peers"))
CONFIGS = os.environ.get("BENCH_PEER_CONFIGS", "c16,prefork-c2,p2-t8")
LLM_CONFIGS = os.environ.get("BENCH_PEER_LLM_CONFIGS", "io-c500,gevent-w2-c250,gevent-p2-t250")
SYSTEMS = ("bullmq", "celery", "dramatiq")
# Tier C's LLM answer, in Sitewright's output format (the peers stream the same text: same bytes on both sides).
LLM_REPLY = ROOT / "bench" / "llm_reply.json"


def _env_number(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class LlmKnobs:
    """The fake servers' knobs (`run.sh serve-fakes` and `run.sh --workload llm` take the same flags): a site
    of `site_pages` pages linked from its root, every answer after `page_delay_ms`; an LLM answer streamed in
    `llm_chunks` pieces over `llm_latency_s`, its text `llm_reply`. Defaults are the peers'; BENCH_LLM_SITE_PAGES,
    BENCH_LLM_PAGE_DELAY_MS, BENCH_LLM_LATENCY_S and BENCH_LLM_CHUNKS change them."""

    site_pages: int = field(default_factory=lambda: int(_env_number("BENCH_LLM_SITE_PAGES", 5)))
    page_delay_ms: float = field(default_factory=lambda: _env_number("BENCH_LLM_PAGE_DELAY_MS", 50))
    llm_latency_s: float = field(default_factory=lambda: _env_number("BENCH_LLM_LATENCY_S", 3.0))
    llm_chunks: int = field(default_factory=lambda: int(_env_number("BENCH_LLM_CHUNKS", 20)))
    llm_reply: Path = LLM_REPLY

    def args(self) -> list[str]:
        return [
            "--site-pages",
            str(self.site_pages),
            "--page-delay-ms",
            f"{self.page_delay_ms:g}",
            "--llm-latency-s",
            f"{self.llm_latency_s:g}",
            "--llm-chunks",
            str(self.llm_chunks),
            "--llm-reply",
            str(self.llm_reply.resolve()),
        ]

    def as_dict(self) -> dict:
        return asdict(self) | {"llm_reply": str(self.llm_reply)}


def _harness(target: Path, scenario: str, args: list[str]) -> list[dict]:
    """One call of the peers' run.sh writing to `target`; its per-run results, or one failed record."""
    cmd = [str(PEERS_DIR / "run.sh"), *args, "--scenario", scenario, "--reps", "1", "--out", str(target)]
    code = subprocess.run(cmd).returncode
    summary = target / "summary.json"
    if not summary.exists():
        return [{"scenario": scenario, "status": "failed", "error": f"run.sh exited {code} without a summary"}]
    return json.loads(summary.read_text())["runs"]


def run_peers(out: Path, jobs: int, rate: float, duration_s: float) -> list[dict]:
    """One rep of the peers' throughput and rate scenarios; their per-run results."""
    runs: list[dict] = []
    for scenario, extra in (
        ("throughput", ["--jobs", str(jobs)]),
        ("rate", ["--rate", f"{rate:g}", "--duration", f"{duration_s:g}"]),
    ):
        runs += _harness(out / scenario, scenario, ["--configs", CONFIGS, "--workload", "noop", *extra])
    return runs


def run_peers_llm(out: Path, jobs: int, knobs: LlmKnobs) -> list[dict]:
    """One rep of the peers' llm workload, throughput scenario (`jobs` jobs), with Tier C's knobs; per-run results."""
    args = ["--configs", LLM_CONFIGS, "--workload", "llm", "--jobs", str(jobs), *knobs.args()]
    return _harness(out / "llm-throughput", "throughput", args)


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


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _range(stats: dict, digits: int = 2) -> str:
    """`median (min–max)` of a `_stats` result, or – when it has no values."""
    if not stats["n"]:
        return "–"
    return f"{_fmt(stats['median'], digits)} ({_fmt(stats['min'], digits)}–{_fmt(stats['max'], digits)})"


def ratios_by_rep(
    ours: list[dict | None],
    reps: list[list[dict]],
    key: str,
    extra: Callable[[list[dict]], list[str]] | None = None,
) -> tuple[dict, list[str]]:
    """`<key><system>`: our jobs/s over the peer's throughput, rep by rep; and a table row per system.

    `ours[i]` is rep i's result of our side (None or incomplete: that rep counts for no ratio), `reps[i]` the
    peers' runs of the same rep. Each system counts with its best configuration by median over the reps
    (highest jobs/s, as `peer_ratios` picks it); each rep's ratio divides our jobs/s by that configuration's
    jobs/s in the same rep, so both sides saw the same phase of the machine. The key holds the median, min and
    max of those per-rep ratios, and the ratios themselves (None for a rep left out). `extra(runs)` gives more
    cells for a row from the best configuration's completed runs.
    """
    result: dict = {}
    rows: list[str] = []
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
        result[f"{key}{system}"] = stats | {"config": best, "per_rep": per_rep}
        reps_cell = ", ".join("–" if r is None else f"{r:.2f}" for r in per_rep)
        peer_cell = medians.get(best) if best else None
        cells = [system, best or "–", peer_cell if peer_cell is not None else "–", _range(stats), reps_cell]
        if extra:
            cells += extra([r for rep in ok for r in rep if r["config"] == best])
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return result, rows


def tier_a_ratios(ours: list[dict | None], reps: list[list[dict]]) -> dict:
    """ratio_noop_jobs_per_s_vs_<system>: Tier A's jobs/s over the peer's noop throughput, rep by rep
    (`ratios_by_rep`), and `tier_a_peers_table`."""
    result, rows = ratios_by_rep(ours, reps, "ratio_noop_jobs_per_s_vs_")
    lines = [
        "| Tier A (no-work stages) vs peer, noop throughput | config | peer jobs/s median "
        "| Tier A / peer, median (min–max) | per rep |",
        "|---|---|---|---|---|",
    ]
    result["tier_a_peers_table"] = "\n".join(lines + rows)
    return result


# Sitewright's processes, in the order the tables show them.
SERVICES = ("gateway", "crawler", "generator", "notifier", "broker", "mongodb")


def _peer_llm_cells(runs: list[dict]) -> list[str]:
    """A peer's peak LLM calls in flight and peak RSS (workers, Redis, producer), medians over `runs`."""
    peak = _stats([r["llm_peak_in_flight"] for r in runs if r.get("llm_peak_in_flight") is not None])
    rss = {
        k: _median([r["peak_rss_mib"][k] for r in runs if k in r.get("peak_rss_mib", {})])
        for k in ("workers", "redis", "producer")
    }
    shown = [f"{k} {v:,.0f}" for k, v in rss.items() if v is not None]
    total = sum(v for v in rss.values() if v is not None)
    return [_range(peak, 0), f"{total:,.0f} ({', '.join(shown)})" if shown else "–"]


def _our_llm_cells(ours: list[dict]) -> list[str]:
    """Sitewright's peak LLM calls in flight and peak RSS per service, medians over its complete reps."""
    peak = _stats([r["llm_peak_in_flight"] for r in ours if r.get("llm_peak_in_flight") is not None])
    rss = {k: _median([r["peak_rss_mib"][k] for r in ours if k in r.get("peak_rss_mib", {})]) for k in SERVICES}
    total = _median([r["peak_rss_mib"]["total"] for r in ours if "total" in r.get("peak_rss_mib", {})])
    shown = [f"{k} {v:,.0f}" for k, v in rss.items() if v is not None]
    return [_range(peak, 0), f"{total:,.0f} ({', '.join(shown)})" if total is not None else "–"]


def tier_c_ratios(ours: list[dict | None], reps: list[list[dict]]) -> dict:
    """ratio_llm_jobs_per_s_vs_<system>: Tier C's jobs/s over the peer's llm throughput, rep by rep
    (`ratios_by_rep`), and `tier_c_peers_table`, which also shows each side's peak LLM calls in flight and
    peak RSS: Sitewright's per service and their peak sum, the peer's workers, Redis and producer (the fake
    servers' on neither side)."""
    result, rows = ratios_by_rep(ours, reps, "ratio_llm_jobs_per_s_vs_", _peer_llm_cells)
    complete = [r for r in ours if r and r.get("complete")]
    jobs = _stats([r["jobs_per_s"] for r in complete if r.get("jobs_per_s")])
    ours_row = ["**Sitewright**", "defaults", _range(jobs, 1), "", "", *_our_llm_cells(complete)]
    lines = [
        "| Tier C (LLM-bound) vs peer, llm throughput | config | jobs/s median | Sitewright / peer, median (min–max) "
        "| per rep | peak LLM calls in flight | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
        "| " + " | ".join(ours_row) + " |",
    ]
    result["tier_c_peers_table"] = "\n".join(lines + rows)
    return result
