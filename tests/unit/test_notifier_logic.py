"""The notifier's pure parts: retry schedule, Standard Webhooks signatures, verdicts, message texts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime

from sitewright_contracts import events as ev
from sitewright_contracts.models import ErrorInfo
from sitewright_notifier.channels import http_verdict, retry_after
from sitewright_notifier.messages import email_text, outcome_payload, sms_text
from sitewright_notifier.retry import RetrySchedule
from sitewright_notifier.webhook import signed_headers
from sitewright_runtime.webhook_endpoints import active_secrets, new_secret


def test_the_default_schedule_spans_hours_with_bounded_jitter():
    schedule = RetrySchedule(rng=random.Random(7))
    assert schedule.max_attempts == 7
    delays = [schedule.delay_after(n) for n in range(1, schedule.max_attempts)]
    for delay, base in zip(delays, schedule.delays_s, strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert sum(delays) > 10 * 3600
    assert schedule.delay_after(schedule.max_attempts) is None


def test_jitter_spreads_retries_and_retry_after_is_honoured_when_longer():
    schedule = RetrySchedule(delays_s=(100,), jitter=0.2, rng=random.Random(1))
    spread = {round(schedule.delay_after(1), 3) for _ in range(20)}
    assert len(spread) > 10
    assert schedule.delay_after(1, retry_after_s=500) == 500
    assert RetrySchedule(delays_s=(100,), jitter=0).delay_after(1, retry_after_s=5) == 100


def test_every_active_secret_signs_and_each_signature_verifies():
    old, new = new_secret(), new_secret()
    body = b'{"type":"job.completed"}'
    headers = signed_headers([new, old], "msg_1", 1700000000, body)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    for secret, signature in zip([new, old], signatures, strict=True):
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
        assert signature == f"v1,{expected}"


def test_expired_secrets_stop_signing():
    now = datetime.now(UTC)
    doc = {"secrets": [{"secret": "new", "expires_at": None}, {"secret": "old", "expires_at": now.replace(year=2000)}]}
    assert active_secrets(doc, now) == ["new"]


def test_http_verdicts_follow_standard_webhooks():
    assert [http_verdict(s) for s in (200, 204, 302, 400, 410, 429, 500, 503)] == [
        "sent",
        "sent",
        "retry",
        "retry",
        "failed",
        "retry",
        "retry",
        "retry",
    ]
    assert retry_after("120", cap_s=60) == 60 and retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60) is None


def test_messages_name_the_site_the_outcome_and_the_link():
    failed = ev.JobFailed(
        job_id="j1", data=ev.JobFailedData(stage="crawl", error=ErrorInfo(code="dns_failure", message="no such host"))
    )
    expires = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    payload = outcome_payload(
        failed,
        {"url": "https://bakery.example/"},
        result_url="https://sw/r/tok",
        job_url="https://sw/api/jobs/j1",
        link_expires_at=expires,
    )
    assert payload["type"] == "job.failed" and payload["data"]["error"]["code"] == "dns_failure"
    subject, text = email_text(payload)
    assert "bakery.example" in subject and "no such host" in text and "https://sw/r/tok" in text
    assert "2030-01-02 03:04 UTC" in text
    assert sms_text(payload).endswith("https://sw/r/tok") and "bakery.example" in sms_text(payload)


async def test_a_channel_without_settings_fails_for_good_and_says_which_variables_to_set():
    from sitewright_notifier.channels import Notice
    from sitewright_notifier.config import NotifierSettings
    from sitewright_notifier.email import EmailChannel
    from sitewright_notifier.sms import SmsChannel

    notice = Notice(key="e:0", tenant="t", channel="sms", target="+15551234567", payload={})
    sms = await SmsChannel(None).send(notice)
    # The operator's log says which variables to set; the tenant reads only that the channel is not set up.
    assert sms.verdict == "failed" and "SITEWRIGHT_SMS_ACCOUNT_SID" in (sms.detail or "")
    assert "SITEWRIGHT" not in (sms.error or "")
    settings = NotifierSettings(kafka_bootstrap="k:1", mongo_url="mongodb://m", env="local")
    mail = await EmailChannel(settings).send(notice)
    assert mail.verdict == "failed" and "SITEWRIGHT_SMTP_HOST" in (mail.detail or "")
    assert "SITEWRIGHT" not in (mail.error or "")


async def test_an_email_target_that_is_not_one_address_fails_for_good_without_a_connection():
    from sitewright_notifier.channels import Notice
    from sitewright_notifier.config import NotifierSettings
    from sitewright_notifier.email import EmailChannel

    # Port 9 on a TEST-NET address: a connection attempt would hang or fail as "retry", not "failed".
    settings = NotifierSettings(
        kafka_bootstrap="127.0.0.1:1",
        mongo_url="mongodb://127.0.0.1:1",
        env="local",
        smtp_host="192.0.2.1",
        smtp_port=9,
    )
    channel = EmailChannel(settings)
    for target in ("a@x.com,b@y.org", "owner@bakery.example\r\nBcc: all@victims.example"):
        notice = Notice(key="j:completed:1:0", tenant="t", channel="email", target=target, payload={})
        result = await channel.send(notice)
        assert result.verdict == "failed" and "one e-mail address" in (result.error or "")


async def test_a_channel_that_raises_makes_a_try_that_counts():
    """So the schedule's cap ends it; before, the claim's lease ran out and the target was tried forever."""
    from sitewright_notifier.channels import Notice, SendResult
    from sitewright_notifier.deliveries import DeliveryLoop
    from sitewright_notifier.retry import RetrySchedule

    class Broken:
        name = "email"

        async def send(self, notice: Notice) -> SendResult:
            raise ValueError("header value contains a newline")

    loop = DeliveryLoop(None, {"email": Broken()}, None, RetrySchedule(), poll_s=1, lease_s=10, concurrency=1)  # type: ignore[arg-type]
    doc = {"_id": "j:completed:1:0", "tenant": "t", "channel": "email", "target": "a@b.example", "payload": {}}
    result = await loop._send(doc)
    assert (
        result.verdict == "retry" and "ValueError" in (result.detail or "") and "ValueError" not in (result.error or "")
    )
    assert RetrySchedule().delay_after(RetrySchedule().max_attempts) is None  # and the tries are capped
