"""The pure rules behind /api/status and /api/debug: percentiles, minute buckets, checks and advice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sitewright_gateway import diagnostics as dx

NOW = datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC)


def test_percentile_is_nearest_rank_and_summary_rounds():
    assert dx.percentile([], 95) is None
    assert dx.percentile([3.0], 95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert (dx.percentile(values, 95), dx.percentile(values, 50), dx.percentile(values, 100)) == (95.0, 50.0, 100.0)
    assert dx.summary([1.0, 2.0, 2.0004]) == {"count": 3, "avg_s": 1.667, "p95_s": 2.0}
    assert dx.summary([]) == {"count": 0, "avg_s": None, "p95_s": None}


def test_per_minute_counts_whole_clock_minutes_ending_with_the_current_one():
    figures = dx.window_figures([], NOW)
    start = figures["throughput"]["start"]
    assert start == datetime(2026, 1, 1, 11, 31, tzinfo=UTC)
    times = [NOW, NOW.replace(second=0), start, start - timedelta(seconds=1), NOW + timedelta(minutes=1)]
    counts = dx.per_minute(times, start, 60)
    assert len(counts) == 60 and counts[-1] == 2 and counts[0] == 1 and sum(counts) == 3


def test_provider_check_reports_presence_never_values():
    check, info = dx.provider_check({})
    assert check.ok and info["provider"] == "offline" and set(info["keys"].values()) == {"not set"}
    check, info = dx.provider_check(
        {"SITEWRIGHT_GENERATOR_PROVIDER": "anthropic", "SITEWRIGHT_GENERATOR_API_KEY": "sk-1"}
    )
    assert check.ok and info["keys"]["SITEWRIGHT_GENERATOR_API_KEY"] == "set" and "sk-1" not in repr((check, info))
    check, info = dx.provider_check({"SITEWRIGHT_GENERATOR_PROVIDER": "sk-pasted-by-mistake"})
    assert not check.ok and info["provider"] == "unknown" and "sk-pasted" not in repr((check, info))


def _figures(created=0, completed=0, failed=0, p95_total=None):
    return {
        "totals": {
            "created": created,
            "finished": completed + failed,
            "completed": completed,
            "failed": failed,
            "cancelled": 0,
        },
        "top_errors": [{"code": "timeout", "count": failed}] if failed else [],
        "timings": {"total": {"count": completed, "avg_s": p95_total, "p95_s": p95_total}},
    }


def test_recommendations_put_the_urgent_first_and_say_ok_only_when_nothing_is_wrong():
    healthy = [
        dx.Check("broker", True, "reachable"),
        dx.Check("provider", True, "offline extractive provider (no key needed)"),
    ]
    advice = dx.recommendations(_figures(created=3, completed=3), healthy, 0, None, 600)
    assert advice[0]["level"] == "ok" and not any(a["level"] in ("warning", "critical") for a in advice)

    broken = [dx.Check("broker", False, "no answer"), dx.Check("provider", True, "anthropic, key set")]
    advice = dx.recommendations(_figures(created=10, completed=2, failed=8, p95_total=400), broken, 2, 300, 600)
    assert advice[0]["level"] == "critical" and "broker" in advice[0]["text"]
    text = " ".join(a["text"] for a in advice)
    assert "2 active jobs have had no event" in text and "8 of 10 jobs failed" in text and "`timeout`" in text
    assert "waited 300 s for a crawler" in text and "lower `max_pages`" in text
    assert all(a["level"] != "ok" for a in advice)


def _event(type_, at_s, attempt=1, **data):
    return {
        "_id": f"{type_}-{at_s}",
        "type": type_,
        "attempt": attempt,
        "occurred_at": NOW + timedelta(seconds=at_s),
        "data": data,
    }


def test_attempts_and_errors_come_from_the_audit_trail():
    events = [
        _event("job.requested", 0),
        _event("crawl.started", 1),
        _event("crawl.failed", 3, error={"code": "timeout", "message": "slow", "retryable": True}),
        _event("job.retry_requested", 5, 2, stage="crawl"),
        _event("crawl.started", 6, 2),
        _event("crawl.succeeded", 8, 2),
        _event("generation.started", 9),
        _event("notification.failed", 12, error="HTTP 500 from the webhook"),
    ]
    rows = [(a["stage"], a["attempt"], a["outcome"], a["duration_s"]) for a in dx.attempts(events)]
    assert rows == [("crawl", 1, "failed", 2.0), ("crawl", 2, "succeeded", 3.0), ("generate", 1, "running", None)]
    errs = dx.errors({"error": None}, events)
    assert [(e["code"], e["stage"], e["attempt"]) for e in errs] == [
        ("timeout", "crawl", 1),
        ("notification_failed", None, 1),
    ]
    job = {"status": "crawling", "stage": "crawl", "attempt": 1, "updated_at": NOW - timedelta(seconds=900)}
    assert dx.diagnosis(job, NOW, 600)[0].startswith("Stuck: no event for 900 s")
