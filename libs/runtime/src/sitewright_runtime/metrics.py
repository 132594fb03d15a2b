"""Every Prometheus metric Sitewright exposes, in one place so names stay consistent.

Naming follows Prometheus' guide: `sitewright_` prefix, base units, `_total`
counters, and no per-job labels (cardinality stays bounded).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOBS_CREATED = Counter("sitewright_jobs_created_total", "Jobs accepted by the API.")
JOBS_FINISHED = Counter("sitewright_jobs_finished_total", "Jobs that reached a final status.", ["status"])
JOB_DURATION = Histogram(
    "sitewright_job_duration_seconds", "Time from request to final status.", buckets=_DURATION_BUCKETS
)
STAGE_DURATION = Histogram(
    "sitewright_stage_duration_seconds",
    "Time one stage attempt took in its worker.",
    ["stage", "outcome"],
    buckets=_DURATION_BUCKETS,
)
JOBS_BY_STATUS = Gauge("sitewright_jobs", "Jobs in the read model by status.", ["status"])
JOBS_STUCK = Gauge("sitewright_jobs_stuck", "Active jobs with no event for longer than the stuck threshold.")
RETRIES = Counter("sitewright_retries_total", "Stage retries requested.", ["stage", "reason"])
DLQ_MESSAGES = Counter("sitewright_dlq_messages_total", "Messages sent to the dead-letter topic.", ["reason"])
CONSUMER_LAG = Gauge("sitewright_consumer_lag", "Records behind the end of the log.", ["group", "partition"])
PROJECTION_LAG = Gauge(
    "sitewright_projection_lag_seconds", "Age of the newest event the projector applied when it applied it."
)
EVENTS_HANDLED = Counter(
    "sitewright_events_handled_total", "Events a consumer handled, by group and outcome.", ["group", "outcome"]
)
EVENTS_PUBLISHED = Counter("sitewright_events_published_total", "Events published, by type.", ["type"])
STAGE_PAUSED = Gauge("sitewright_stage_paused", "1 while a stage is paused through jobs.control.", ["stage"])
LLM_TOKENS = Counter(
    "sitewright_llm_tokens_total", "LLM tokens consumed, by provider and direction (in, out).", ["provider", "direction"]
)
