"""Each worker against the real broker (and database): a message in, the right events out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sitewright_contracts import decode, header, uuid7
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, JobOptions, NotifyTarget, PageSummary
from sitewright_crawler.config import CrawlerSettings
from sitewright_crawler.main import create_app as crawler_app
from sitewright_devstack.sample_site import StaticSite
from sitewright_generator.config import GeneratorSettings
from sitewright_generator.main import create_app as generator_app
from sitewright_notifier.config import NotifierSettings
from sitewright_notifier.main import create_app as notifier_app
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.mongo import connect
from tests.helpers import eventually, read_topic


def common(kafka: str, unique: str) -> dict:
    return dict(
        kafka_bootstrap=kafka, topic_prefix=f"w{unique}.", topic_partitions=2, env="local", progress_interval_s=0
    )


def of_job(job_id: str):
    def types(records) -> list[str]:
        return [decode(r.value).type for r in records if r.key == job_id.encode()]

    return types


async def publish(kafka: str, prefix: str, *events: ev.Event) -> None:
    from sitewright_contracts import Topics

    publisher = Publisher(kafka, "test", Topics(prefix))
    await publisher.start()
    try:
        await publisher.publish(events)
    finally:
        await publisher.stop()


async def test_crawler_turns_a_request_into_crawl_events(kafka_bootstrap, unique):
    settings = CrawlerSettings(**common(kafka_bootstrap, unique), crawler_group=f"crawler-{unique}")
    job_id = uuid7()
    with StaticSite() as site:
        async with crawler_app(settings).running():
            request = ev.JobRequested(
                job_id=job_id, data=ev.JobRequestedData(url=site.url, options=JobOptions(max_pages=4))
            )
            await publish(kafka_bootstrap, settings.topic_prefix, request)
            types = of_job(job_id)
            records = await read_topic(
                kafka_bootstrap, settings.topics.events, until=lambda rs: "crawl.succeeded" in types(rs)
            )
    seen = types(records)
    assert seen[:2] == ["job.requested", "crawl.started"] and seen[-1] == "crawl.succeeded"
    assert "crawl.progress" in seen
    done = decode([r for r in records if r.key == job_id.encode()][-1].value)
    assert isinstance(done, ev.CrawlSucceeded)
    assert 1 <= len(done.data.crawl.pages) <= 4
    assert done.data.crawl.pages[0].title
    progress = [decode(r.value) for r in records if header(r.headers, "event-type") == "crawl.progress"]
    assert all(10 <= p.data.progress <= 30 for p in progress)


async def test_crawler_reports_an_unreachable_site_as_a_retryable_failure(kafka_bootstrap, unique):
    settings = CrawlerSettings(**common(kafka_bootstrap, unique), crawler_group=f"crawler-{unique}")
    job_id = uuid7()
    from sitewright_devstack.infra import free_port

    async with crawler_app(settings).running():
        url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
        await publish(
            kafka_bootstrap, settings.topic_prefix, ev.JobRequested(job_id=job_id, data=ev.JobRequestedData(url=url))
        )
        types = of_job(job_id)
        records = await read_topic(
            kafka_bootstrap, settings.topics.events, until=lambda rs: "crawl.failed" in types(rs)
        )
    failed = decode([r for r in records if r.key == job_id.encode()][-1].value)
    assert failed.data.error.code == "unreachable" and failed.data.error.retryable


async def test_generator_turns_a_crawl_into_a_validated_result(kafka_bootstrap, unique):
    settings = GeneratorSettings(**common(kafka_bootstrap, unique), generator_group=f"generator-{unique}")
    job_id = uuid7()
    crawl = CrawlContext(
        start_url="https://bakery.example/",
        pages=[
            PageSummary(
                url="https://bakery.example/",
                title="Rye & Co | Bakery",
                description="Sourdough bakery in Leeds.",
                text="We bake sourdough rye every morning. Our bread is made with organic flour. Orders open at 7am.",
            )
        ],
    )
    async with generator_app(settings).running():
        await publish(
            kafka_bootstrap,
            settings.topic_prefix,
            ev.CrawlSucceeded(job_id=job_id, data=ev.CrawlSucceededData(crawl=crawl)),
        )
        types = of_job(job_id)
        records = await read_topic(
            kafka_bootstrap, settings.topics.events, until=lambda rs: "job.completed" in types(rs)
        )
    seen = types(records)
    assert seen[:2] == ["crawl.succeeded", "generation.started"] and seen[-2:] == ["parsing.started", "job.completed"]
    assert set(seen[2:-2]) == {"generation.progress"}
    mine = [decode(r.value) for r in records if r.key == job_id.encode()]
    progress = [e.data.progress for e in mine if e.type == "generation.progress"]
    assert progress == sorted(progress) and all(40 <= p <= 80 for p in progress) and progress[-1] == 80
    completed = mine[-1]
    assert completed.data.result.meta.title and completed.data.result.schema_["@context"] == "https://schema.org"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_notifier_posts_a_signed_webhook_once_per_outcome(kafka_bootstrap, mongo_url, unique):
    settings = NotifierSettings(
        **{k: v for k, v in common(kafka_bootstrap, unique).items() if k != "progress_interval_s"},
        mongo_url=mongo_url,
        mongo_db=f"n_{unique}",
        notifier_group=f"notifier-{unique}",
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    job_id = uuid7()
    mongo = connect(mongo_url)
    failed = ev.JobFailed(
        job_id=job_id,
        data=ev.JobFailedData(
            stage="crawl",
            error={"code": "dns_failure", "message": "no such host"},
            url="https://bakery.example/",
            notify=[NotifyTarget(channel="webhook", target=hook)],
        ),
    )
    try:
        async with notifier_app(settings).running():
            await publish(kafka_bootstrap, settings.topic_prefix, failed)
            await eventually(lambda: _count(_Receiver.received, job_id, 1), what="the webhook")
            types = of_job(job_id)
            await read_topic(kafka_bootstrap, settings.topics.events, until=lambda rs: "notification.sent" in types(rs))
            await publish(kafka_bootstrap, settings.topic_prefix, failed)  # a replay of the same outcome
            await read_topic(
                kafka_bootstrap, settings.topics.events, until=lambda rs: types(rs).count("job.failed") == 2
            )
        async with notifier_app(settings).running():  # and again after a restart
            await publish(kafka_bootstrap, settings.topic_prefix, failed)
            await read_topic(
                kafka_bootstrap, settings.topics.events, until=lambda rs: types(rs).count("job.failed") == 3
            )
        # The endpoint got its own secret on first use; the tenant reads it from the API.
        secret = (await mongo[settings.mongo_db]["webhook_endpoints"].find_one({"url": hook}))["secrets"][0]["secret"]
    finally:
        server.shutdown()
        await mongo.close()
    received = [(h, b) for h, b in _Receiver.received if json.loads(b)["data"]["job_id"] == job_id]
    assert len(received) == 1, "a replayed outcome must not notify twice"
    headers, body = received[0]
    payload = json.loads(body)
    assert payload["data"]["status"] == "failed" and payload["data"]["error"]["code"] == "dns_failure"
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(
        hmac.new(base64.b64decode(secret.removeprefix("whsec_")), signed, hashlib.sha256).digest()
    ).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"


async def _count(received, job_id: str, n: int) -> bool:
    return sum(json.loads(b)["data"]["job_id"] == job_id for _, b in received) >= n


async def test_malformed_messages_go_to_the_dlq_and_the_consumer_keeps_going(kafka_bootstrap, unique):
    settings = GeneratorSettings(**common(kafka_bootstrap, unique), generator_group=f"generator-{unique}")
    from aiokafka import AIOKafkaProducer

    job_id = uuid7()
    crawl = CrawlContext(
        start_url="https://a.example/",
        pages=[PageSummary(url="https://a.example/", title="A", text="A shop. It sells things.")],
    )
    async with generator_app(settings).running():
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topics.events, b"{not json", key=b"poison", headers=[("event-type", b"crawl.succeeded")]
            )
        finally:
            await producer.stop()
        await publish(
            kafka_bootstrap,
            settings.topic_prefix,
            ev.CrawlSucceeded(job_id=job_id, data=ev.CrawlSucceededData(crawl=crawl)),
        )
        types = of_job(job_id)
        await read_topic(kafka_bootstrap, settings.topics.events, until=lambda rs: "job.completed" in types(rs))
    dlq = await read_topic(kafka_bootstrap, settings.topics.dlq, until=lambda rs: len(rs) >= 1)
    assert dlq[0].value == b"{not json" and dlq[0].key == b"poison"
    assert header(dlq[0].headers, "dlq-reason") == "malformed_json"
    assert header(dlq[0].headers, "dlq-source-topic") == settings.topics.events
    assert header(dlq[0].headers, "dlq-source-offset") == "0"
    assert header(dlq[0].headers, "dlq-consumer-group") == settings.generator_group
