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
JOBS_BY_STATUS = Gauge(
    "sitewright_jobs", "Active jobs in the read model by status (pending, crawling, generating, parsing).", ["status"]
)
JOBS_STUCK = Gauge("sitewright_jobs_stuck", "Active jobs with no event for longer than the stuck threshold.")
RETRIES = Counter("sitewright_retries_total", "Stage retries requested.", ["stage", "reason"])
MESSAGES_SET_ASIDE = Counter(
    "sitewright_messages_set_aside_total",
    "Messages a batch consumer gave up on after its attempts, so the batch around them could go on.",
    ["group"],
)
DLQ_MESSAGES = Counter("sitewright_dlq_messages_total", "Messages sent to the dead-letter topic.", ["reason"])
CONSUMER_LAG = Gauge("sitewright_consumer_lag", "Records behind the end of the log.", ["group", "partition"])
PROJECTION_LAG = Gauge(
    "sitewright_projection_lag_seconds", "Age of the newest event the projector applied when it applied it."
)
PROJECTION_WRITES = Counter(
    "sitewright_projection_writes_total",
    "Documents the projector wrote, by collection: against events applied, how well it folds a job's events together.",
    ["collection"],
)
EVENTS_HANDLED = Counter(
    "sitewright_events_handled_total", "Events a consumer handled, by group and outcome.", ["group", "outcome"]
)
EVENTS_PUBLISHED = Counter("sitewright_events_published_total", "Events published, by type.", ["type"])
STAGE_PAUSED = Gauge("sitewright_stage_paused", "1 while a stage is paused through jobs.control.", ["stage"])
LLM_TOKENS = Counter(
    "sitewright_llm_tokens_total",
    "LLM tokens consumed, by provider and direction (in, out).",
    ["provider", "direction"],
)
# The generator's adaptive limit on provider calls (sitewright_generator/limiter.py), read at each scrape.
LLM_CONCURRENCY_LIMIT = Gauge(
    "sitewright_llm_concurrency_limit", "Provider calls the generator lets run at once now (adaptive).", ["provider"]
)
LLM_CALLS_IN_FLIGHT = Gauge("sitewright_llm_calls_in_flight", "Provider calls streaming now.", ["provider"])
LLM_CALLS_WAITING = Gauge("sitewright_llm_calls_waiting", "Provider calls waiting for a slot.", ["provider"])
LLM_THROTTLED = Counter(
    "sitewright_llm_throttled_total",
    "Provider calls throttled (429, overloaded): each halves the limit once per round and waits its Retry-After.",
    ["provider"],
)
NOTIFICATIONS = Counter(
    "sitewright_notifications_total",
    "Notification tries, by channel and verdict (sent, retry, failed).",
    ["channel", "verdict"],
)

# What faststream's Prometheus middleware measures, for our own aiokafka consumers
# (`instrument.py` records them): per group, topic and handler (the event type handled).
MESSAGES_RECEIVED = Counter(
    "sitewright_messages_received_total", "Messages a consumer took in for a handler.", ["group", "topic", "handler"]
)
MESSAGES_RECEIVED_BYTES = Counter(
    "sitewright_messages_received_bytes_total", "Bytes of the messages taken in.", ["group", "topic", "handler"]
)
MESSAGES_IN_PROCESS = Gauge("sitewright_messages_in_process", "Messages being handled now.", ["group", "handler"])
MESSAGES_PROCESSED = Counter(
    "sitewright_messages_processed_total",
    "Messages handled, by outcome (ok, retried, dead_lettered, undecodable).",
    ["group", "handler", "outcome"],
)
MESSAGE_PROCESSING = Histogram(
    "sitewright_message_processing_seconds",
    "Time to handle one message (one batch, for batch consumers).",
    ["group", "handler"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
MESSAGE_EXCEPTIONS = Counter(
    "sitewright_message_exceptions_total",
    "Exceptions raised by handlers, by type.",
    ["group", "handler", "exception_type"],
)

# HTTP request metrics (the gateway's `http_metrics.py`): route templates, never raw paths.
HTTP_REQUESTS = Counter("sitewright_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "sitewright_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_PROGRESS = Gauge("sitewright_http_requests_in_progress", "HTTP requests being answered now.", ["method"])
HTTP_SHED = Counter(
    "sitewright_http_requests_shed_total", "HTTP requests answered 429 at once: the gateway had too many in progress."
)

SCHEDULER_LEADER = Gauge("sitewright_scheduler_leader", "1 on the gateway whose scheduler holds the lease.")

# Series that exist from the start at 0, so that rate() and increase() see the first event
# (a counter that appears at 1 has no increase to Prometheus) and alerts can fire on it.
for _status in ("completed", "failed", "cancelled"):
    JOBS_FINISHED.labels(_status)
for _reason in (
    "handler_error",
    "malformed_json",
    "empty",
    "invalid",
    "unknown_type",
    "header_mismatch",
    "attempts_exhausted",
    "not_retryable",
):
    DLQ_MESSAGES.labels(_reason)
for _stage in ("crawl", "generate"):
    for _reason in ("stage_failed", "stuck"):
        RETRIES.labels(_stage, _reason)
    for _outcome in ("succeeded", "failed"):
        STAGE_DURATION.labels(_stage, _outcome)
