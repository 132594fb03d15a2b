"""Tell each of a job's targets about its outcome, once per outcome event and target."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from pymongo.asynchronous.database import AsyncDatabase
from sitewright_contracts import derived_uuid7
from sitewright_contracts import events as ev
from sitewright_runtime.consumer import Delivery
from sitewright_runtime.logs import get_logger
from sitewright_runtime.netguard import AddressGuard

from .config import NotifierSettings
from .webhook import Delivered, deliver

log = get_logger(__name__)
PRODUCER = "notifier"


class NotifyHandlers:
    def __init__(self, settings: NotifierSettings, db: AsyncDatabase, client: httpx.AsyncClient, guard: AddressGuard):
        self.settings = settings
        self.jobs = db["jobs"]
        self.sent = db["notifications"]
        self.client = client
        self.guard = guard

    async def on_outcome(self, event: ev.Event, delivery: Delivery) -> None:
        job = await self.jobs.find_one({"_id": event.job_id}, {"notify": 1, "url": 1})
        if job is None:
            log.warning("notify_job_unknown", job_id=event.job_id)
            return
        for index, target in enumerate(job.get("notify") or []):
            await self._notify(event, job, index, target, delivery)

    async def _notify(self, event: ev.Event, job: dict, index: int, target: dict, delivery: Delivery) -> None:
        key = f"{event.event_id}:{index}"
        if await self.sent.find_one({"_id": key, "ok": True}):
            return  # a redelivered or replayed outcome: this target already has it
        outcome = event.type.removeprefix("job.")
        base = self.settings.public_url.rstrip("/")
        payload = {
            "type": event.type,
            "job_id": event.job_id,
            "status": outcome,
            "url": job.get("url"),
            "occurred_at": event.occurred_at.isoformat(),
            "job_url": f"{base}/api/jobs/{event.job_id}",
            "result_url": f"{base}/api/jobs/{event.job_id}/result" if outcome == "completed" else None,
            "error": event.data.error.model_dump() if isinstance(event, ev.JobFailed) else None,
        }
        if target["channel"] == "webhook":
            secret = self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else None
            result = await deliver(
                self.client, self.guard, target["target"], key, payload, secret=secret, attempts=self.settings.webhook_attempts
            )
        else:
            result = Delivered(False, error=f"the {target['channel']} channel is not configured on this deployment")
        await self.sent.update_one(
            {"_id": key},
            {"$set": {"job_id": event.job_id, "ok": result.ok, "status_code": result.status_code, "error": result.error,
                      "at": datetime.now(UTC)}},
            upsert=True,
        )
        data = ev.NotificationData(
            channel=target["channel"], target=target["target"], outcome=outcome, outcome_event_id=event.event_id,
            status_code=result.status_code, error=result.error,
        )
        cls = ev.NotificationSent if result.ok else ev.NotificationFailed
        await delivery.emit(
            cls(event_id=derived_uuid7(event.event_id, "notification", index), job_id=event.job_id, tenant=event.tenant,
                attempt=event.attempt, producer=PRODUCER, data=data)
        )
        log.info("notified", job_id=event.job_id, channel=target["channel"], ok=result.ok, status_code=result.status_code)
