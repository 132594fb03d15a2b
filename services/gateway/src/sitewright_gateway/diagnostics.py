"""What `/api/status` and `/api/debug/{id}` say, as pure functions of read-model documents.

No I/O here: `status.py` reads the documents and the live checks, these
functions turn them into figures and plain-language advice, so every rule
is unit-testable without a broker or database.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sitewright_contracts.models import ACTIVE_STATUSES, JOB_STATUSES

Doc = dict[str, Any]

WINDOW = timedelta(hours=1)
# Failure share (of finished jobs, with at least `MIN_SAMPLE` of them) above which the status page warns.
FAILURE_WARN_RATE = 0.2
MIN_SAMPLE = 5
# Pending this long means no crawler is taking work.
BACKLOG_WARN_S = 120.0
STAGES = ("crawl", "generate")


# ---------------------------------------------------------------- figures


def percentile(values: list[float], p: float) -> float | None:
    """The `p`-th percentile (0-100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, Any]:
    """Count, average and p95 of durations in seconds (rounded to milliseconds)."""
    if not values:
        return {"count": 0, "avg_s": None, "p95_s": None}
    return {
        "count": len(values),
        "avg_s": round(sum(values) / len(values), 3),
        "p95_s": round(percentile(values, 95) or 0.0, 3),
    }


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


def per_minute(times: list[datetime], start: datetime, minutes: int) -> list[int]:
    """Counts of `times` per minute from `start`, oldest first; times outside are ignored."""
    counts = [0] * minutes
    for t in times:
        i = int((t - start).total_seconds() // 60)
        if 0 <= i < minutes:
            counts[i] += 1
    return counts


def window_figures(docs: list[Doc], now: datetime, window: timedelta = WINDOW) -> dict[str, Any]:
    """Totals, statuses, rates, stage timings and per-minute throughput of the jobs created in `window`.

    `docs` are those jobs (a job created earlier and finished in the window is
    not among them: reading every job updated in the window would take an
    index that every read-model write pays for).
    """
    start = now - window
    minutes = int(window.total_seconds() // 60)
    # Whole clock minutes, the last one being the current (partial) minute, so a chart's bars line up with the clock.
    bucket_start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    created = [d for d in docs if d.get("created_at") and d["created_at"] >= start]
    finished = [d for d in docs if d.get("finished_at") and d["finished_at"] >= start]
    by_outcome = Counter(d["status"] for d in finished)
    completed = [d for d in finished if d["status"] == "completed"]
    decided = by_outcome["completed"] + by_outcome["failed"]

    timings = {
        stage: summary([d["timings"][f"{stage}_s"] for d in completed if f"{stage}_s" in (d.get("timings") or {})])
        for stage in STAGES
    }
    timings["wait"] = summary(
        [s for d in completed if (s := _seconds(d.get("started_at"), d["created_at"])) is not None]
    )
    timings["total"] = summary([s for d in completed if (s := _seconds(d["finished_at"], d["created_at"])) is not None])

    errors = Counter((d.get("error") or {}).get("code", "unknown") for d in finished if d["status"] == "failed")
    return {
        "window": {"from": start, "to": now, "minutes": minutes},
        "totals": {
            "created": len(created),
            "finished": len(finished),
            "completed": by_outcome["completed"],
            "failed": by_outcome["failed"],
            "cancelled": by_outcome["cancelled"],
        },
        "by_status": {s: n for s in JOB_STATUSES if (n := sum(1 for d in docs if d["status"] == s))},
        # Of the jobs that ran to an outcome: cancelled ones were the user's choice, not the system's.
        "completion_rate": round(by_outcome["completed"] / decided, 4) if decided else None,
        "failed": by_outcome["failed"],
        "top_errors": [{"code": code, "count": n} for code, n in errors.most_common(5)],
        "timings": timings,
        "throughput": {
            "start": bucket_start,
            "minute_s": 60,
            "created": per_minute([d["created_at"] for d in created], bucket_start, minutes),
            "completed": per_minute([d["finished_at"] for d in completed], bucket_start, minutes),
            "failed": per_minute(
                [d["finished_at"] for d in finished if d["status"] == "failed"], bucket_start, minutes
            ),
        },
    }


# ---------------------------------------------------------------- configuration and advice


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


# The provider's variables as the generator reads them; the gateway only sees its own environment.
PROVIDER_VAR = "SITEWRIGHT_GENERATOR_PROVIDER"
PROVIDER_KEY_VARS = {
    "anthropic": ("SITEWRIGHT_GENERATOR_API_KEY", "SITEWRIGHT_ANTHROPIC_API_KEY"),
    "openai": ("SITEWRIGHT_GENERATOR_API_KEY", "SITEWRIGHT_OPENAI_API_KEY"),
}
KEY_VARS = ("SITEWRIGHT_GENERATOR_API_KEY", "SITEWRIGHT_ANTHROPIC_API_KEY", "SITEWRIGHT_OPENAI_API_KEY")
KNOWN_PROVIDERS = ("offline", "anthropic", "openai")


def provider_check(environ: dict[str, str]) -> tuple[Check, dict[str, Any]]:
    """Which provider is configured and whether its key is present; key values are never read out."""
    raw = environ.get(PROVIDER_VAR, "").strip().lower()
    provider = raw or "offline"
    keys = {var: "set" if environ.get(var, "").strip() else "not set" for var in KEY_VARS}
    # Only a known provider name is echoed back: anything else might be a mistyped secret.
    shown = provider if provider in KNOWN_PROVIDERS else "unknown"
    info = {"variable": PROVIDER_VAR, "provider": shown, "keys": keys}
    if provider == "offline":
        return Check("provider", True, "offline extractive provider (no key needed)"), info
    if provider not in PROVIDER_KEY_VARS:
        return Check(
            "provider", False, f"{PROVIDER_VAR} names an unknown provider; use one of {', '.join(KNOWN_PROVIDERS)}"
        ), info
    present = [v for v in PROVIDER_KEY_VARS[provider] if keys[v] == "set"]
    if present:
        return Check("provider", True, f"{provider}, key set ({present[0]})"), info
    return Check(
        "provider", False, f"{provider} selected but none of {', '.join(PROVIDER_KEY_VARS[provider])} is set"
    ), info


def recommendations(
    figures: dict[str, Any], checks: list[Check], stuck: int, oldest_pending_s: float | None, stuck_after_s: float
) -> list[dict[str, str]]:
    """Plain-language advice, most urgent first; one `ok` line when nothing needs doing."""
    advice: list[dict[str, str]] = []
    failed_checks = {c.name: c for c in checks if not c.ok}
    if "broker" in failed_checks:
        advice.append(
            _say(
                "critical",
                "The gateway cannot reach the broker: start it (`make up` does) or fix SITEWRIGHT_KAFKA_BOOTSTRAP. "
                "Jobs submitted meanwhile are kept and published once it is back.",
            )
        )
    if "database" in failed_checks:
        advice.append(
            _say(
                "critical",
                "The database does not answer: check that it runs and that SITEWRIGHT_MONGO_URL points at it.",
            )
        )
    if "projector" in failed_checks:
        advice.append(
            _say(
                "critical",
                "The projector is not running, so job statuses do not move: restart the gateway and read its log.",
            )
        )
    if "scheduler" in failed_checks:
        advice.append(
            _say(
                "warning",
                "No gateway holds the scheduler lease: "
                "retries, stuck-job re-drives and unpublished requests wait until one does.",
            )
        )
    if "provider" in failed_checks:
        advice.append(
            _say(
                "warning",
                f"Generator provider: {failed_checks['provider'].detail}. Set the key in the generator's environment, "
                "or unset SITEWRIGHT_GENERATOR_PROVIDER to use the offline provider.",
            )
        )
    if stuck:
        advice.append(
            _say(
                "warning",
                f"{stuck} active job{'s have' if stuck != 1 else ' has'} had no event "
                f"for more than {stuck_after_s:g} s: "
                "check that the crawler and generator run (their logs are under .sitewright/logs); "
                "the scheduler re-drives stuck jobs.",
            )
        )
    if oldest_pending_s is not None and oldest_pending_s > BACKLOG_WARN_S:
        advice.append(
            _say(
                "warning",
                f"A job has waited {oldest_pending_s:.0f} s for a crawler: "
                "start a crawler, or more of them if they are busy.",
            )
        )
    totals = figures["totals"]
    decided = totals["completed"] + totals["failed"]
    if decided >= MIN_SAMPLE and totals["failed"] / decided > FAILURE_WARN_RATE:
        top = figures["top_errors"][0]["code"] if figures["top_errors"] else "unknown"
        advice.append(
            _say(
                "warning",
                f"{totals['failed']} of {decided} jobs failed in the last hour, most often with `{top}`: "
                "open one failed job (GET /api/debug/<id>) to see its errors per attempt.",
            )
        )
    elif totals["failed"]:
        advice.append(
            _say(
                "info",
                f"{totals['failed']} job{'s' if totals['failed'] != 1 else ''} failed in the last hour: "
                "their pages show the error and a Retry button.",
            )
        )
    p95_total = figures["timings"]["total"]["p95_s"]
    if p95_total is not None and p95_total > 300:
        advice.append(
            _say(
                "info",
                f"95 % of jobs took up to {p95_total:.0f} s: "
                "lower `max_pages` for large sites, or run more crawlers and generators.",
            )
        )
    if any(c.name == "provider" and c.ok and c.detail.startswith("offline") for c in checks):
        advice.append(
            _say(
                "info",
                "Content is written by the offline extractive provider: set SITEWRIGHT_GENERATOR_PROVIDER "
                "(anthropic or openai) and its key on the generator for LLM-written content.",
            )
        )
    if totals["created"] == 0:
        advice.append(
            _say("info", "No jobs in the last hour: submit a URL with the form on the dashboard, or POST /api/jobs.")
        )
    if not any(a["level"] in ("critical", "warning") for a in advice):
        advice.insert(0, _say("ok", "Everything the gateway can see is healthy."))
    return advice


def _say(level: str, text: str) -> dict[str, str]:
    return {"level": level, "text": text}


# ---------------------------------------------------------------- one job


FAILURE_EVENTS = ("crawl.failed", "generation.failed", "job.failed", "notification.failed")
_STAGE_OF = {
    "crawl.started": "crawl",
    "crawl.progress": "crawl",
    "crawl.succeeded": "crawl",
    "crawl.failed": "crawl",
    "generation.started": "generate",
    "generation.progress": "generate",
    "parsing.started": "generate",
    "generation.failed": "generate",
    "job.completed": "generate",
}
_ENDS = {
    "crawl.succeeded": "succeeded",
    "crawl.failed": "failed",
    "generation.failed": "failed",
    "job.completed": "succeeded",
}


def attempts(events: list[Doc]) -> list[dict[str, Any]]:
    """One row per (stage, attempt) from the audit trail: when it started and ended, how, and how long it took."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for e in events:
        stage = _STAGE_OF.get(e["type"])
        if e["type"] == "job.retry_requested":
            stage = (e.get("data") or {}).get("stage")
        if stage is None:
            continue
        row = rows.setdefault(
            (stage, e["attempt"]),
            {
                "stage": stage,
                "attempt": e["attempt"],
                "started_at": e["occurred_at"],
                "ended_at": None,
                "outcome": "running",
                "error": None,
                "events": 0,
                "duration_s": None,
            },
        )
        row["events"] += 1
        row["started_at"] = min(row["started_at"], e["occurred_at"])
        if e["type"] in _ENDS:
            row["ended_at"] = e["occurred_at"]
            row["outcome"] = _ENDS[e["type"]]
            row["duration_s"] = _seconds(row["ended_at"], row["started_at"])
            if row["outcome"] == "failed":
                row["error"] = (e.get("data") or {}).get("error")
    return sorted(
        rows.values(), key=lambda r: (r["started_at"], STAGES.index(r["stage"]) if r["stage"] in STAGES else 9)
    )


def errors(job: Doc, events: list[Doc]) -> list[dict[str, Any]]:
    """Every error the job met, oldest first, from the audit trail (and the job's own when the trail has none)."""
    found = []
    for e in events:
        if e["type"] not in FAILURE_EVENTS:
            continue
        data = e.get("data") or {}
        error = data.get("error")
        if isinstance(error, str):  # a notification failure carries a sentence
            error = {"code": "notification_failed", "message": error, "retryable": False}
        found.append(
            {
                "event_type": e["type"],
                "event_id": e["_id"],
                "attempt": e["attempt"],
                "at": e["occurred_at"],
                "stage": data.get("stage") or _STAGE_OF.get(e["type"]),
                **(error or {}),
            }
        )
    if not found and job.get("error"):
        found.append(
            {
                "event_type": None,
                "event_id": None,
                "attempt": job.get("attempt"),
                "at": job.get("updated_at"),
                **job["error"],
            }
        )
    return found


def job_timings(job: Doc, events: list[Doc], now: datetime) -> dict[str, Any]:
    """How long the job spent waiting, in each stage and in all, in seconds (None where it has not happened)."""
    first_of: dict[str, Any] = {}
    for e in events:
        first_of.setdefault(e["type"], e["occurred_at"])
    end = job.get("finished_at")
    return {
        "wait_s": _seconds(job.get("started_at"), job.get("created_at")),
        **{f"{stage}_s": (job.get("timings") or {}).get(f"{stage}_s") for stage in STAGES},
        "parse_s": _seconds(first_of.get("job.completed"), first_of.get("parsing.started")),
        "total_s": _seconds(end, job.get("created_at")),
        "age_s": _seconds(now, job.get("created_at")),
        "since_last_event_s": _seconds(now, job.get("updated_at")),
    }


def diagnosis(job: Doc, now: datetime, stuck_after_s: float) -> list[str]:
    """What the job is doing, and what to look at, in a few sentences."""
    status = job["status"]
    quiet = _seconds(now, job.get("updated_at")) or 0.0
    says = []
    if job.get("published") is False:
        says.append(
            "Its request has not reached the broker yet: the scheduler publishes it when the broker is reachable."
        )
    if status in ACTIVE_STATUSES:
        if job.get("next_attempt_at"):
            says.append(
                f"Waiting to retry {job['stage']} (attempt {(job.get('action') or {}).get('attempt', '?')}) "
                f"at {job['next_attempt_at'].isoformat(timespec='seconds')}."
            )
        elif quiet > stuck_after_s:
            says.append(
                f"Stuck: no event for {quiet:.0f} s (threshold {stuck_after_s:g} s); "
                "the scheduler re-drives it as a new attempt."
            )
        else:
            says.append(
                f"Active: {status} (stage {job['stage']}, attempt {job.get('attempt')}), last event {quiet:.0f} s ago."
            )
        if job.get("cancel_requested_at"):
            says.append("A cancel was requested; the stage service stops it at its next step.")
    elif status == "failed":
        err = job.get("error") or {}
        says.append(
            (
                f"Failed in {err.get('stage') or job['stage']}: {err.get('code', 'unknown')}: {err.get('message', '')}"
            ).rstrip(": ")
        )
    else:
        says.append(f"{status.capitalize()}.")
    return says
