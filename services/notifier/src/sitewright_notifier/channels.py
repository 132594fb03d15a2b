"""What every notification channel is: one `send` that says whether to stop, retry or give up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Verdict = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class Notice:
    """One outcome for one target, built once when the delivery is scheduled and the same on every try."""

    key: str  # the delivery's id: the webhook-id, the e-mail's Message-ID
    tenant: str
    channel: str
    target: str
    payload: dict[str, Any]  # `messages.outcome_payload`


@dataclass(frozen=True)
class SendResult:
    """How one try went. `retry` tries again later; `failed` never will."""

    verdict: Verdict
    status_code: int | None = None
    error: str | None = None  # what the tenant reads (on the job and its events): plain, no internal addresses
    retry_after_s: float | None = None  # the receiver's own Retry-After, when it sent one
    detail: str | None = None  # what the operator reads in the logs: hosts, ports, a provider's own words


class Channel(Protocol):
    name: str

    async def send(self, notice: Notice) -> SendResult: ...


def http_verdict(status: int) -> Verdict:
    """Standard Webhooks' rule, also right for REST APIs: 2xx done, 410 gone for good, anything else retried."""
    if 200 <= status < 300:
        return "sent"
    if status == 410:
        return "failed"
    return "retry"


def retry_after(value: str | None, cap_s: float) -> float | None:
    """Seconds from a Retry-After header given in seconds (dates are rare in APIs and ignored)."""
    if value and value.strip().isdigit():
        return min(float(value.strip()), cap_s)
    return None
