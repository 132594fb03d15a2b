"""SMS through a Twilio-compatible REST API; another provider is one more `SmsProvider` class."""

from __future__ import annotations

from typing import Protocol

import httpx

from .channels import Notice, SendResult, http_verdict, retry_after
from .messages import sms_text


class SmsProvider(Protocol):
    async def send_sms(self, to: str, body: str) -> SendResult: ...


class TwilioSms:
    """POST {base}/2010-04-01/Accounts/{sid}/Messages.json with basic auth and form fields To, From, Body."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        max_retry_after_s: float,
    ):
        self.client = client
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = (account_sid, auth_token)
        self.from_number = from_number
        self.max_retry_after_s = max_retry_after_s

    async def send_sms(self, to: str, body: str) -> SendResult:
        try:
            form = {"To": to, "From": self.from_number, "Body": body}
            response = await self.client.post(self.url, auth=self.auth, data=form)
        except httpx.HTTPError as exc:
            return SendResult(
                "retry", error="the SMS provider could not be reached", detail=f"{type(exc).__name__}: {exc}"
            )
        verdict = http_verdict(response.status_code)
        if verdict == "sent":
            return SendResult("sent", response.status_code)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            # Twilio's error body names the problem (an invalid number, an unverified sender): not worth retrying.
            return SendResult(
                "failed",
                response.status_code,
                "the SMS provider refused the message",
                detail=_twilio_error(response),
            )
        return SendResult(
            "retry",
            response.status_code,
            f"the SMS provider answered HTTP {response.status_code}",
            retry_after_s=retry_after(response.headers.get("retry-after"), self.max_retry_after_s),
            detail=_twilio_error(response),
        )


def _twilio_error(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('message', '')} (code {body.get('code', response.status_code)})"
    except ValueError:
        return response.text[:200]


class SmsChannel:
    name = "sms"

    def __init__(self, provider: SmsProvider | None):
        self.provider = provider

    async def send(self, notice: Notice) -> SendResult:
        if self.provider is None:
            return SendResult(
                "failed",
                error="SMS is not configured on this deployment",
                detail="set SITEWRIGHT_SMS_ACCOUNT_SID, SITEWRIGHT_SMS_AUTH_TOKEN and SITEWRIGHT_SMS_FROM",
            )
        return await self.provider.send_sms(notice.target, sms_text(notice.payload))
