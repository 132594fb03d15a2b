"""What a target is told: the outcome payload (webhook body) and its e-mail and SMS renderings."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sitewright_contracts import events as ev

_HEADLINES = {
    "completed": "Your SEO content for {site} is ready",
    "failed": "Sitewright could not finish the job for {site}",
    "cancelled": "The Sitewright job for {site} was cancelled",
}


def outcome_payload(
    event: ev.Event, job: dict[str, Any], *, result_url: str, job_url: str, link_expires_at: datetime
) -> dict[str, Any]:
    """The Standard Webhooks shaped body: `type`, `timestamp` and the outcome in `data`."""
    outcome = event.type.removeprefix("job.")
    data: dict[str, Any] = {
        "job_id": event.job_id,
        "status": outcome,
        "url": job.get("url"),
        "result_url": result_url,
        "link_expires_at": link_expires_at.isoformat(),
        "job_url": job_url,
    }
    if isinstance(event, ev.JobFailed):
        data["error"] = event.data.error.model_dump() | {"stage": event.data.stage}
    if isinstance(event, ev.JobCompleted):
        data["title"] = event.data.result.meta.title
    if isinstance(event, ev.JobCancelled):
        data["reason"] = event.data.reason
    return {"type": event.type, "timestamp": event.occurred_at.isoformat(), "data": data}


def _site(data: dict[str, Any]) -> str:
    return urlsplit(data.get("url") or "").hostname or "your site"


def email_text(payload: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of the e-mail for an outcome."""
    data = payload["data"]
    subject = _HEADLINES[data["status"]].format(site=_site(data))
    lines = [subject + ".", ""]
    if data["status"] == "completed":
        lines += [f"Meta title: {data.get('title', '')}", "", "See the meta tags, page content, FAQ and JSON-LD here:"]
    elif data["status"] == "failed":
        error = data.get("error") or {}
        lines += [f"Reason: {error.get('message', 'unknown')} ({error.get('code', 'error')}).", "", "Details:"]
    else:
        lines += [f"Reason: {data.get('reason', 'cancelled')}.", "", "Details:"]
    lines += [data["result_url"], "", f"This link works until {data['link_expires_at'][:16].replace('T', ' ')} UTC."]
    return subject, "\n".join(lines) + "\n"


def sms_text(payload: dict[str, Any]) -> str:
    """One short message: headline and link (a long URL still fits in a few SMS segments)."""
    data = payload["data"]
    return f"Sitewright: {_HEADLINES[data['status']].format(site=_site(data))}: {data['result_url']}"
