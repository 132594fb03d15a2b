"""Topic names, and the header names every message on them carries."""

JOBS_EVENTS = "jobs.events"
JOBS_DLQ = "jobs.dlq"
JOBS_CONTROL = "jobs.control"
ALL_TOPICS = (JOBS_EVENTS, JOBS_DLQ, JOBS_CONTROL)

H_EVENT_TYPE = "event-type"
H_EVENT_ID = "event-id"
H_CONTENT_TYPE = "content-type"
H_TRACEPARENT = "traceparent"
# The job's priority (0-9, higher first), copied onto every event of the job so workers can order waiting work.
H_PRIORITY = "priority"

# Dead-letter headers: where the message came from and why it could not be handled.
H_DLQ_SOURCE_TOPIC = "dlq-source-topic"
H_DLQ_SOURCE_PARTITION = "dlq-source-partition"
H_DLQ_SOURCE_OFFSET = "dlq-source-offset"
H_DLQ_ERROR = "dlq-error"
H_DLQ_REASON = "dlq-reason"
H_DLQ_ATTEMPTS = "dlq-attempts"
H_DLQ_GROUP = "dlq-consumer-group"


class Topics:
    """The topic names of one deployment; a prefix keeps tests (or tenants of a shared cluster) apart."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.events = prefix + JOBS_EVENTS
        self.dlq = prefix + JOBS_DLQ
        self.control = prefix + JOBS_CONTROL
        self.all = (self.events, self.dlq, self.control)
