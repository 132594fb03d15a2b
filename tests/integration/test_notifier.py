"""The notifier against real local servers, a real broker and a real database.

Webhooks go to a receiver that verifies Standard Webhooks signatures the way
the spec tells receivers to; e-mail to aiosmtpd (plain, and STARTTLS with a
login); SMS to a local server shaped like Twilio's Messages API. Retries use
delays of tenths of a second instead of hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from pymongo.asynchronous.database import AsyncDatabase

from sitewright_contracts import decode, uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import ErrorInfo, SeoResult
from sitewright_notifier.config import NotifierSettings
from sitewright_notifier.deliveries import DeliveryStore
from sitewright_notifier.main import create_app as notifier_app
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.mongo import connect
from sitewright_runtime.webhook_endpoints import COLLECTION, WebhookEndpoints, active_secrets
from tests.helpers import eventually, read_topic
from tests.integration.local_servers import (
    MailHandler,
    ScriptedServer,
    TwilioApi,
    WebhookReceiver,
    self_signed_cert,
    smtp_server,
)
from tests.integration.test_gateway_api import gateway, gateway_settings

TENANT = "default"
RESULT = SeoResult.model_validate(
    {
        "meta": {"title": "Crumb & Co, sourdough bakery", "description": "Sourdough baked daily in Leeds."},
        "content": [{"heading": "Our bread", "body": "Baked at dawn.\n<script>alert('crawled text')</script>"}],
        "faq": [{"question": "Do you deliver?", "answer": "Within Leeds, daily."}],
        "schema": {"@context": "https://schema.org", "@type": "Bakery", "name": "Crumb & Co"},
    }
)


def notifier_settings(kafka: str, mongo: str, unique: str, **extra: Any) -> NotifierSettings:
    """Settings sharing the gateway test helper's database and topics, with retries in tenths of a second."""
    base: dict[str, Any] = dict(
        kafka_bootstrap=kafka,
        mongo_url=mongo,
        mongo_db=f"gw_{unique}",
        topic_prefix=f"t{unique}.",
        topic_partitions=2,
        env="local",
        notifier_group=f"notifier-{unique}",
        retry_delays_s=[0.3, 0.6],
        retry_jitter=0,
        delivery_poll_s=0.05,
        public_url="http://gateway",
    )
    return NotifierSettings(**(base | extra))


@contextlib.asynccontextmanager
async def database(settings: NotifierSettings):
    client = connect(settings.mongo_url)
    try:
        yield client[settings.mongo_db]
    finally:
        await client.close()


async def publish(settings: NotifierSettings, *events: ev.Event) -> None:
    publisher = Publisher(settings.kafka_bootstrap, "test", settings.topics)
    await publisher.start()
    try:
        await publisher.publish(events)
    finally:
        await publisher.stop()


_TARGETS: dict[str, dict[str, Any]] = {}


async def add_job(db: AsyncDatabase, *targets: tuple[str, str]) -> str:
    """A job with these notify targets; its outcome events carry them, as every producer's do (`targets`)."""
    job_id = uuid7()
    remember_targets(job_id, "https://bakery.example/", *targets)
    return job_id


def remember_targets(job_id: str, url: str, *targets: tuple[str, str]) -> None:
    _TARGETS[job_id] = {"url": url, "notify": [{"channel": channel, "target": target} for channel, target in targets]}


def targets(job_id: str) -> dict[str, Any]:
    """What an outcome of the job carries for the notifier (`events.OutcomeData`)."""
    return _TARGETS[job_id]


def completed(job_id: str) -> ev.JobCompleted:
    return ev.JobCompleted(
        job_id=job_id, tenant=TENANT, producer="test", data=ev.JobCompletedData(result=RESULT, **targets(job_id))
    )


def cancelled(job_id: str, **fields: Any) -> ev.JobCancelled:
    return ev.JobCancelled(job_id=job_id, tenant=TENANT, data=ev.JobCancelledData(**targets(job_id)), **fields)


async def registered(db: AsyncDatabase, receiver: WebhookReceiver, path: str = "/hook") -> str:
    """Register the receiver's URL (what POST /api/webhooks/endpoints does) and give it the secret."""
    url = receiver.url + path
    receiver.secrets = active_secrets(await WebhookEndpoints(db[COLLECTION]).enable(TENANT, url))
    return url


async def at_least(items: list, count: int) -> bool:
    return len(items) >= count


async def settled(db: AsyncDatabase, job_id: str, count: int = 1) -> list[dict[str, Any]] | None:
    """The job's deliveries once there are `count` and each is sent or failed for good."""
    docs = [d async for d in db["deliveries"].find({"job_id": job_id}).sort("_id", 1)]
    return docs if len(docs) >= count and all(d["state"] in ("sent", "failed") for d in docs) else None


async def notifications(settings: NotifierSettings, job_id: str, count: int) -> list[ev.Event]:
    """The job's notification.* events on the log, once there are `count`, in the order of the tries."""

    def mine(records) -> list[ev.Event]:
        events = (decode(r.value) for r in records if r.key == job_id.encode())
        return [e for e in events if e.type.startswith("notification.")]

    records = await read_topic(
        settings.kafka_bootstrap, settings.topics.events, until=lambda rs: len(mine(rs)) >= count
    )
    found = mine(records)
    assert len(found) == count, [(e.type, e.data.delivery_attempt) for e in found]
    return sorted(found, key=lambda e: (e.data.outcome, e.data.delivery_attempt))


# ---- webhooks ---------------------------------------------------------------------------------


async def test_webhook_retries_5xx_and_429_with_one_id_and_a_replay_sends_nothing_twice(
    kafka_bootstrap, mongo_url, unique
):
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique)
    async with database(settings) as db:
        with WebhookReceiver(statuses=(500, 429, 204)) as receiver:
            job_id = await add_job(db, ("webhook", await registered(db, receiver)))
            outcome = completed(job_id)
            async with notifier_app(settings).running():
                await publish(settings, outcome)
                await eventually(lambda: settled(db, job_id), what="the delivery to succeed")
                # The same outcome again (a replay of the log), then a later outcome of the same job: the
                # notifier handles one job's events in order, so once the later one arrives the replay was seen.
                await publish(settings, outcome, cancelled(job_id))
                await eventually(lambda: at_least(receiver.requests, 4), what="the cancellation webhook")
            async with notifier_app(settings).running():  # and once more after a restart
                # The replay, the same outcome under a new event id (a redone stage reports it again), and a
                # failure of a later attempt, which is a new outcome: only that one is sent.
                await publish(
                    settings,
                    outcome,
                    cancelled(job_id, event_id=uuid7()),
                    ev.JobFailed(
                        job_id=job_id,
                        tenant=TENANT,
                        attempt=2,
                        data=ev.JobFailedData(
                            stage="crawl",
                            error=ErrorInfo(code="unreachable", message="down", retryable=True),
                            **targets(job_id),
                        ),
                    ),
                )
                await eventually(lambda: at_least(receiver.requests, 5), what="the failure webhook")
            events = await notifications(settings, job_id, 5)

    tries = [r for r in receiver.requests if r.json()["type"] == "job.completed"]
    assert len(tries) == 3 and all(receiver.verified), "one delivery, three tries, every one correctly signed"
    assert len({r.headers["webhook-id"] for r in tries}) == 1, "webhook-id is stable across retries"
    assert receiver.duplicates == [], "no outcome was delivered twice"
    gaps = [b.at - a.at for a, b in zip(tries, tries[1:])]
    assert gaps[0] >= 0.3 * 0.9 and gaps[1] >= 0.6 * 0.9, gaps
    body = tries[-1].json()
    assert body["data"]["status"] == "completed" and body["data"]["title"] == RESULT.meta.title
    assert body["data"]["result_url"].startswith("http://gateway/r/")

    done = [e for e in events if e.data.outcome == "completed"]
    assert [(e.type, e.data.delivery_attempt, e.data.status_code) for e in done] == [
        ("notification.failed", 1, 500),
        ("notification.failed", 2, 429),
        ("notification.sent", 3, 204),
    ]
    assert done[0].data.next_attempt_at is not None and done[2].data.next_attempt_at is None
    assert len({e.event_id for e in events}) == 5


async def test_two_notifier_instances_deliver_each_outcome_exactly_once(kafka_bootstrap, mongo_url, unique):
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique)
    async with database(settings) as db:
        with WebhookReceiver(statuses=(204,)) as receiver:
            hook = await registered(db, receiver)
            jobs = [await add_job(db, ("webhook", hook)) for _ in range(6)]
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(2):
                    await stack.enter_async_context(notifier_app(settings).running())
                for job_id in jobs:  # every outcome delivered twice (a redelivery), then a later outcome
                    outcome = completed(job_id)
                    await publish(settings, outcome, outcome, cancelled(job_id))
                await eventually(lambda: at_least(receiver.requests, 12), timeout=60, what="12 webhooks")
                for job_id in jobs:
                    await eventually(lambda job_id=job_id: settled(db, job_id, 2), what="both deliveries recorded")
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 12 and len(set(ids)) == 12 and receiver.duplicates == []
    assert sorted(r.json()["data"]["job_id"] for r in receiver.requests) == sorted(jobs * 2)


async def test_a_pending_retry_survives_a_restart_and_a_dead_instances_claim_is_taken_over(
    kafka_bootstrap, mongo_url, unique
):
    # The retry is due in a minute, so it is still pending when the first instance stops.
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique, retry_delays_s=[60.0, 60.0], delivery_lease_s=1.5)
    async with database(settings) as db:
        with WebhookReceiver(statuses=(500, 204)) as receiver:
            job_id = await add_job(db, ("webhook", await registered(db, receiver)))

            async def retry_pending():
                doc = await db["deliveries"].find_one({"job_id": job_id})
                return doc if doc and (doc["state"], doc["attempt"]) == ("pending", 1) else None

            async with notifier_app(settings).running():
                await publish(settings, completed(job_id))
                pending = await eventually(retry_pending, what="the first try to fail")
            # The notifier is gone with a retry due; another instance claims it and dies before trying.
            dead_claim = await DeliveryStore(db["deliveries"]).claim(pending, lease_s=1.5)
            assert dead_claim is not None
            claimed_at = time.monotonic()
            async with notifier_app(settings).running():
                [doc] = await eventually(lambda: settled(db, job_id), what="the claim to be taken over")
            events = await notifications(settings, job_id, 2)
    assert len(receiver.requests) == 2 and receiver.requests[1].at - claimed_at >= 1.5 * 0.9, (
        "not before the lease ran out"
    )
    assert (doc["state"], doc["attempt"]) == ("sent", 3)
    assert [(e.type, e.data.delivery_attempt) for e in events] == [("notification.failed", 1), ("notification.sent", 3)]


async def test_an_event_recorded_but_not_published_before_a_crash_is_published_later(
    kafka_bootstrap, mongo_url, unique
):
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique)
    job_id = uuid7()
    lost = ev.NotificationSent(
        job_id=job_id,
        tenant=TENANT,
        producer="notifier",
        data=ev.NotificationData(
            channel="webhook",
            target="https://hooks.example/",
            outcome="completed",
            outcome_event_id=uuid7(),
            status_code=200,
        ),
    )
    async with database(settings) as db:
        # What a try leaves when its process dies between recording the result and publishing the event.
        long_ago = datetime.now(UTC) - timedelta(minutes=1)
        await db["deliveries"].insert_one(
            {
                "_id": f"{lost.data.outcome_event_id}:0",
                "job_id": job_id,
                "state": "sent",
                "attempt": 1,
                "version": 2,
                "next_attempt_at": None,
                "updated_at": long_ago,
                "has_outbox": True,
                "outbox": [lost.model_dump(mode="json")],
            }
        )
        async with notifier_app(settings).running():
            [published] = await notifications(settings, job_id, 1)

            async def cleared():
                return (await db["deliveries"].find_one({"job_id": job_id}))["has_outbox"] is False

            await eventually(cleared, what="the outbox cleared")
    assert published.event_id == lost.event_id and published.type == "notification.sent"


async def test_an_outcome_carries_its_targets_and_the_notifier_reads_no_job(kafka_bootstrap, mongo_url, unique):
    """Outcomes carry whom to tell, so the notifier reads no other service's collection: no job document
    exists here. An outcome from a producer older than that (no targets) is served by the request the
    notifier saw, and one whose request it never saw is logged and skipped."""
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique)
    async with database(settings) as db:
        with WebhookReceiver() as receiver:
            url = await registered(db, receiver)
            carried = await add_job(db, ("webhook", url))
            seen = ev.JobRequested(
                job_id=uuid7(),
                tenant=TENANT,
                producer="test",
                data=ev.JobRequestedData(url="https://seen.example/", notify=[{"channel": "webhook", "target": url}]),
            )
            old = ev.JobCompleted(
                job_id=seen.job_id, tenant=TENANT, producer="test", data=ev.JobCompletedData(result=RESULT)
            )
            unknown = ev.JobCompleted(
                job_id=uuid7(), tenant=TENANT, producer="test", data=ev.JobCompletedData(result=RESULT)
            )
            async with notifier_app(settings).running():
                await publish(settings, unknown, seen, old, completed(carried))
                await eventually(lambda: at_least(receiver.requests, 2), what="both webhooks")
                await eventually(lambda: settled(db, carried), what="the carried outcome's delivery")
        assert await db["jobs"].count_documents({}) == 0
        assert await db["deliveries"].count_documents({"job_id": unknown.job_id}) == 0
    assert sorted(r.json()["data"]["url"] for r in receiver.requests) == [
        "https://bakery.example/",
        "https://seen.example/",
    ]


async def test_a_redirect_is_a_failed_try_and_410_disables_the_endpoint(kafka_bootstrap, mongo_url, unique):
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique, retry_delays_s=[0.2])
    async with database(settings) as db:
        with (
            ScriptedServer() as elsewhere,
            WebhookReceiver(statuses=(410,)) as gone,
            WebhookReceiver(statuses=(302,), headers={"location": elsewhere.url + "/moved"}) as redirecting,
        ):
            moved = await add_job(db, ("webhook", await registered(db, redirecting)))
            gone_job = await add_job(db, ("webhook", await registered(db, gone)))
            async with notifier_app(settings).running():
                await publish(settings, completed(moved), completed(gone_job))
                [moved_delivery] = await eventually(lambda: settled(db, moved), what="the redirected delivery to fail")
                await eventually(lambda: settled(db, gone_job), what="the 410 delivery to fail")
                later = await add_job(db, ("webhook", gone.url + "/hook"))
                await publish(settings, completed(later))
                [later_delivery] = await eventually(
                    lambda: settled(db, later), what="the delivery to a disabled endpoint"
                )
            moved_events = await notifications(settings, moved, 2)
            endpoint = await db[COLLECTION].find_one({"url": gone.url + "/hook"})

    assert len(redirecting.requests) == 2 and elsewhere.requests == [], "redirects are tried again, never followed"
    assert moved_delivery["state"] == "failed" and "redirects are not followed" in moved_delivery["last"]["error"]
    assert [(e.data.delivery_attempt, e.data.status_code, e.data.next_attempt_at is None) for e in moved_events] == [
        (1, 302, False),
        (2, 302, True),
    ]
    assert len(gone.requests) == 1, "a 410 is final, and a disabled endpoint gets nothing more"
    assert endpoint["disabled"] and "410" in endpoint["disabled_reason"]
    assert later_delivery["state"] == "failed" and later_delivery["attempt"] == 1
    assert (
        "disabled" in later_delivery["last"]["error"]
        and "POST /api/webhooks/endpoints" in later_delivery["last"]["error"]
    )


async def test_a_webhook_to_a_private_address_is_refused_without_a_request(kafka_bootstrap, mongo_url, unique):
    # Production's rule: only public addresses (plus what a deployment allows; here not loopback).
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique, allow_cidrs=["192.0.2.0/24"])
    async with database(settings) as db:
        with WebhookReceiver() as receiver:
            job_id = await add_job(
                db, ("webhook", receiver.url + "/hook"), ("webhook", "http://169.254.169.254/latest/meta-data")
            )
            async with notifier_app(settings).running():
                await publish(settings, completed(job_id))
                docs = await eventually(lambda: settled(db, job_id, 2), what="both deliveries refused")
    assert receiver.requests == []
    for doc in docs:
        assert (doc["state"], doc["attempt"]) == ("failed", 1)
        assert doc["last"]["error"].startswith("blocked_address"), doc["last"]


# ---- e-mail -----------------------------------------------------------------------------------


async def test_email_over_starttls_with_login_retries_a_temporary_refusal(kafka_bootstrap, mongo_url, unique, tmp_path):
    cert = self_signed_cert(tmp_path)
    handler = MailHandler(refuse_rcpt=1)
    server = smtp_server(handler, cert=cert, users={"sitewright": "mail-password"})
    settings = notifier_settings(
        kafka_bootstrap,
        mongo_url,
        unique,
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_starttls=True,
        smtp_username="sitewright",
        smtp_password="mail-password",
        smtp_ca_file=str(cert[0]),
        smtp_from="Sitewright <noreply@sitewright.test>",
    )
    try:
        async with database(settings) as db:
            job_id = await add_job(db, ("email", "owner@bakery.example"))
            async with notifier_app(settings).running():
                await publish(settings, completed(job_id))
                [delivery] = await eventually(lambda: settled(db, job_id), what="the e-mail")
            events = await notifications(settings, job_id, 2)
    finally:
        server.stop()
    assert delivery["state"] == "sent"
    assert [(e.type, e.data.status_code) for e in events] == [("notification.failed", 451), ("notification.sent", 250)]
    [mail] = handler.messages
    assert mail.tls and mail.login == "sitewright" and mail.recipients == ["owner@bakery.example"]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert message["Subject"] == "Your SEO content for bakery.example is ready"
    assert message["From"] == "Sitewright <noreply@sitewright.test>" and message["Message-ID"].endswith("@sitewright>")
    text = message.get_content()
    assert "http://gateway/r/" in text and RESULT.meta.title in text


async def test_email_without_tls_or_login_and_a_refused_recipient_is_final(kafka_bootstrap, mongo_url, unique):
    handler = MailHandler()
    server = smtp_server(handler)
    settings = notifier_settings(
        kafka_bootstrap, mongo_url, unique, smtp_host="127.0.0.1", smtp_port=server.port, smtp_starttls=False
    )

    async def refuse_unknown(server_, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    handler.handle_RCPT = refuse_unknown  # type: ignore[method-assign]
    try:
        async with database(settings) as db:
            job_id = await add_job(db, ("email", "owner@bakery.example"), ("email", "nobody@bakery.example"))
            async with notifier_app(settings).running():
                await publish(
                    settings,
                    ev.JobFailed(
                        job_id=job_id,
                        tenant=TENANT,
                        data=ev.JobFailedData(
                            stage="crawl",
                            error=ErrorInfo(code="dns_failure", message="bakery.example does not resolve"),
                            **targets(job_id),
                        ),
                    ),
                )
                ok, refused = await eventually(lambda: settled(db, job_id, 2), what="both e-mails")
    finally:
        server.stop()
    assert ok["state"] == "sent" and not handler.messages[0].tls and handler.messages[0].login is None
    text = email.message_from_bytes(handler.messages[0].content, policy=email.policy.default).get_content()
    assert "does not resolve" in text
    assert (refused["state"], refused["attempt"], refused["last"]["status_code"]) == ("failed", 1, 550)


# ---- SMS --------------------------------------------------------------------------------------


async def test_sms_through_a_twilio_shaped_api_retries_429_and_5xx(kafka_bootstrap, mongo_url, unique):
    with TwilioApi(statuses=(429, 500, 201), headers={"retry-after": "1"}) as api:
        settings = notifier_settings(
            kafka_bootstrap,
            mongo_url,
            unique,
            sms_base_url=api.url,
            sms_account_sid=api.account_sid,
            sms_auth_token=api.auth_token,
            sms_from="+15550001111",
        )
        async with database(settings) as db:
            job_id = await add_job(db, ("sms", "+15551234567"))
            async with notifier_app(settings).running():
                await publish(settings, completed(job_id))
                [delivery] = await eventually(lambda: settled(db, job_id), what="the SMS")
            events = await notifications(settings, job_id, 3)
    assert delivery["state"] == "sent" and len(api.requests) == 3
    assert api.requests[1].at - api.requests[0].at >= 0.9, (
        "the 429's Retry-After (1 s) is longer than the 0.3 s schedule"
    )
    form = {k: v[0] for k, v in parse_qs(api.requests[-1].body.decode()).items()}
    assert form["To"] == "+15551234567" and form["From"] == "+15550001111"
    assert "bakery.example" in form["Body"] and "http://gateway/r/" in form["Body"]
    assert [(e.type, e.data.status_code) for e in events] == [
        ("notification.failed", 429),
        ("notification.failed", 500),
        ("notification.sent", 201),
    ]


async def test_sms_refused_by_the_provider_is_not_retried(kafka_bootstrap, mongo_url, unique):
    message = "The 'To' number +15551234567 is not a valid phone number."
    with TwilioApi(statuses=(400,), error_body={"code": 21211, "message": message}) as api:
        settings = notifier_settings(
            kafka_bootstrap,
            mongo_url,
            unique,
            sms_base_url=api.url,
            sms_account_sid=api.account_sid,
            sms_auth_token=api.auth_token,
            sms_from="+15550001111",
        )
        async with database(settings) as db:
            job_id = await add_job(db, ("sms", "+15551234567"))
            async with notifier_app(settings).running():
                await publish(settings, completed(job_id))
                [delivery] = await eventually(lambda: settled(db, job_id), what="the refused SMS")
            [event] = await notifications(settings, job_id, 1)
    assert len(api.requests) == 1 and delivery["state"] == "failed"
    # The tenant's event says the provider refused; the provider's own words go to the operator's log only.
    assert event.type == "notification.failed" and event.data.error == "the SMS provider refused the message"


# ---- outcomes the notifier never handled ---------------------------------------------------------


async def skip_to_end(settings: NotifierSettings, partitions: int) -> None:
    """Commit the notifier's group at the end of the log: it goes on past what is there without handling it."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    group = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.notifier_group)
    await group.start()
    try:
        tps = [TopicPartition(settings.topics.events, p) for p in range(partitions)]
        group.assign(tps)
        await group.commit(await group.end_offsets(tps))
    finally:
        await group.stop()


async def completed_job(api: Any, settings: NotifierSettings, hook: str) -> str:
    """A job submitted through the gateway with a webhook target, then completed (the stages played here)."""
    created = await api.post(
        "/api/jobs", json={"url": "https://bakery.example/", "notify": [{"channel": "webhook", "target": hook}]}
    )
    job_id = created.json()["id"]
    remember_targets(job_id, "https://bakery.example/", ("webhook", hook))
    await publish(settings, completed(job_id))

    async def done() -> bool:
        return (await api.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"

    await eventually(done, what="the job completed")
    return job_id


async def test_replaying_a_notifiers_dead_letter_notifies_a_completed_job_once(kafka_bootstrap, mongo_url, unique):
    """The notifier gave up on an outcome (a database outage): a DLQ replay sends it, although the job is done."""
    from sitewright_runtime.kafka import DeadMessage

    settings = notifier_settings(kafka_bootstrap, mongo_url, unique)
    gw = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with database(settings) as db, gateway(gw) as api:
        with WebhookReceiver(statuses=(204,)) as receiver:
            hook = await registered(db, receiver)
            job_id = await completed_job(api, settings, hook)
            records = await read_topic(
                kafka_bootstrap,
                settings.topics.events,
                until=lambda rs: any(r.key == job_id.encode() and decode(r.value).type == "job.completed" for r in rs),
            )
            record = next(r for r in records if r.key == job_id.encode() and decode(r.value).type == "job.completed")
            # The notifier's group read past the outcome without scheduling it, and dead-lettered it.
            await skip_to_end(settings, gw.topic_partitions)
            publisher = Publisher(kafka_bootstrap, "test", settings.topics)
            await publisher.start()
            try:
                await publisher.dead_letter_message(
                    DeadMessage(
                        record.topic, record.partition, record.offset, record.key, record.value, record.headers
                    ),
                    group=settings.notifier_group,
                    reason="attempts_exhausted",
                    error="ServerSelectionTimeoutError: the database did not answer",
                    attempts=3,
                )
            finally:
                await publisher.stop()

            async def dead_letter() -> list[dict[str, Any]] | None:
                return (await api.get("/api/dlq", params={"job_id": job_id})).json()["items"] or None

            [entry] = await eventually(dead_letter, what="the outcome in the DLQ")
            async with notifier_app(settings).running():
                replay = await api.post(f"/api/dlq/{entry['id']}/replay")
                assert replay.status_code == 202, replay.text
                assert replay.json()["replayed"]["kind"] == "redeliver"
                await eventually(lambda: settled(db, job_id), what="the replayed outcome delivered")
                again = await api.post(f"/api/dlq/{entry['id']}/replay")  # a second replay sends nothing more
                assert again.status_code == 202
                await publish(settings, cancelled(job_id))  # in the job's order: after the second replay
                await eventually(lambda: at_least(receiver.requests, 2), what="the marker after the replay")
            assert (await api.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"

    kinds = [r.json()["type"] for r in receiver.requests]
    assert kinds.count("job.completed") == 1 and receiver.duplicates == []


async def test_an_outcome_the_notifier_never_saw_is_sent_again_and_notified_once(kafka_bootstrap, mongo_url, unique):
    """The memory-only broker restarted before the notifier read an outcome: the scheduler's reconciler sends it."""
    settings = notifier_settings(kafka_bootstrap, mongo_url, unique)
    gw = gateway_settings(kafka_bootstrap, mongo_url, unique, notify_reconcile_after_s=5, scheduler_interval_s=0.2)
    async with database(settings) as db, gateway(gw) as api:
        with WebhookReceiver(statuses=(204,)) as receiver:
            hook = await registered(db, receiver)
            await skip_to_end(settings, gw.topic_partitions)  # the group exists before the outcome
            lost = await completed_job(api, settings, hook)
            await skip_to_end(settings, gw.topic_partitions)  # and has gone past it, as if it were lost
            async with notifier_app(settings).running():
                await eventually(lambda: settled(db, lost), timeout=30, what="the lost outcome reconciled")
                notified = await completed_job(api, settings, hook)  # one the running notifier handles itself
                await eventually(lambda: settled(db, notified), what="the other job notified")
                await asyncio.sleep(6)  # past the grace period of the job the notifier handled
            lost_doc = await db["jobs"].find_one({"_id": lost})
            notified_doc = await db["jobs"].find_one({"_id": notified})

    sent = [r.json()["data"]["job_id"] for r in receiver.requests]
    assert sorted(sent) == sorted([lost, notified]) and receiver.duplicates == [], sent
    assert lost_doc["notify_reconciled_at"] is not None and lost_doc["notifications"][0]["ok"]
    assert "notify_reconciled_at" not in notified_doc, "a job whose notification is on record is left alone"
    assert lost_doc["due_at"] > lost_doc["finished_at"] + timedelta(days=6), "then it waits for its retention"
