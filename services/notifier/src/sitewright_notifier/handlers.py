"""Turn a job's outcome into one scheduled delivery per target, once per outcome (and attempt) and target."""

from __future__ import annotations

from collections import OrderedDict
from datetime import timedelta
from typing import Any

from sitewright_contracts import events as ev
from sitewright_runtime.consumer import HandlerContext
from sitewright_runtime.links import sign_link
from sitewright_runtime.logs import get_logger

from .config import NotifierSettings
from .deliveries import DeliveryLoop, DeliveryStore
from .messages import outcome_payload

log = get_logger(__name__)
# Requests remembered until their outcome (a few hundred bytes each): more than the jobs in flight at full speed.
KNOWN_REQUESTS = 10_000


class NotifyHandlers:
    def __init__(self, settings: NotifierSettings, store: DeliveryStore, loop: DeliveryLoop):
        self.settings = settings
        self.store = store
        self.loop = loop
        self._requests: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def on_request(self, event: ev.Event, delivery: HandlerContext) -> None:
        """Remember the request's targets, URL and tenant, for an outcome whose producer did not carry them.

        Outcomes carry their targets (`events.OutcomeData`), so the notifier reads no other service's data;
        this memory only serves outcomes from producers older than that, during an upgrade.
        """
        assert isinstance(event, ev.JobRequested)
        self._requests[event.job_id] = {
            "tenant": event.tenant,
            "url": event.data.url,
            "notify": [t.model_dump() for t in event.data.notify],
        }
        self._requests.move_to_end(event.job_id)
        while len(self._requests) > KNOWN_REQUESTS:
            self._requests.popitem(last=False)

    async def on_outcome(self, event: ev.Event, delivery: HandlerContext) -> None:
        assert isinstance(event, ev.JobCompleted | ev.JobFailed | ev.JobCancelled)
        remembered = self._requests.pop(event.job_id, None)
        carried = event.data
        if carried.notify is not None:
            job: dict[str, Any] = {
                "tenant": event.tenant,
                "url": carried.url,
                "notify": [t.model_dump() for t in carried.notify],
            }
        elif remembered is not None:
            job = remembered
        else:
            log.warning("notify_targets_unknown", job_id=event.job_id, outcome=event.type)
            return
        payload = self._payload(event, job)
        scheduled = 0
        for index, target in enumerate(job.get("notify") or []):
            # The key is the dedupe record: a replayed or redelivered outcome finds it and sends nothing. It names
            # the outcome, not the event, so the same outcome reported twice (a stage redone after a stuck job
            # was re-driven yields a second `job.completed`) is still one notification; an outcome after a new
            # attempt (failed, retried, failed again) is a new one.
            outcome = event.type.removeprefix("job.")
            scheduled += await self.store.schedule(
                {
                    "_id": f"{event.job_id}:{outcome}:{event.attempt}:{index}",
                    "job_id": event.job_id,
                    "tenant": job.get("tenant", event.tenant),
                    "outcome_event_id": event.event_id,
                    "outcome": event.type.removeprefix("job."),
                    "index": index,
                    "event_attempt": event.attempt,
                    "channel": target["channel"],
                    "target": target["target"],
                    "payload": payload,
                    "traceparent": delivery.traceparent,
                }
            )
        if scheduled:
            self.loop.wake()
        log.info(
            "notifications_scheduled", job_id=event.job_id, scheduled=scheduled, targets=len(job.get("notify") or [])
        )

    def _payload(self, event: ev.Event, job: dict[str, Any]) -> dict[str, Any]:
        """The outcome with a signed link that lives as long as the job is kept (from the outcome on)."""
        s = self.settings
        expires = event.occurred_at + timedelta(seconds=s.retention_s)
        tenant = job.get("tenant", event.tenant)
        token = sign_link(s.link_secret.get_secret_value(), event.job_id, tenant, int(expires.timestamp()))
        base = s.public_url.rstrip("/")
        return outcome_payload(
            event,
            job,
            result_url=f"{base}/r/{token}",
            job_url=f"{base}/api/jobs/{event.job_id}",
            link_expires_at=expires,
        )
