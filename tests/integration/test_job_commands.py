"""Cancel, retry, dead letters and pause, through the gateway's API, with a real broker and database.

No workers run here: the test plays the stage services by publishing the events they would emit.
"""

from __future__ import annotations

from sitewright_contracts import Topics, decode, header
from sitewright_contracts import events as ev
from sitewright_contracts.models import ErrorInfo
from sitewright_runtime.kafka import Publisher
from tests.helpers import eventually, read_topic
from tests.integration.test_gateway_api import gateway, gateway_settings

FAST = dict(retry_backoff_s=[0.3], retry_max_attempts=2, scheduler_interval_s=0.2)


async def publish(settings, *events: ev.Event, topic: str | None = None, raw: bytes | None = None) -> None:
    publisher = Publisher(settings.kafka_bootstrap, "test", Topics(settings.topic_prefix))
    await publisher.start()
    try:
        if raw is not None:
            await publisher.send_raw(
                settings.topics.events, key=b"poison", value=raw, headers=[("event-type", b"crawl.started")]
            )
        else:
            await publisher.publish(events, topic=topic)
    finally:
        await publisher.stop()


def crawl_failed(job: dict, attempt: int) -> ev.CrawlFailed:
    return ev.CrawlFailed(
        job_id=job["id"],
        attempt=attempt,
        producer="test",
        data=ev.StageFailedData(error=ErrorInfo(code="unreachable", message="connection refused", retryable=True)),
    )


async def job_state(api, job_id: str) -> dict:
    return (await api.get(f"/api/jobs/{job_id}")).json()


async def test_cancel_ends_the_job_and_nothing_revives_it(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, **FAST)
    async with gateway(settings) as api:
        job = (await api.post("/api/jobs", json={"url": "https://example.com/"})).json()
        await publish(settings, ev.CrawlStarted(job_id=job["id"], data=ev.CrawlStartedData(url="https://example.com/")))
        await eventually(lambda: _status_is(api, job["id"], "crawling"), what="crawling")

        assert (await api.post(f"/api/jobs/{job['id']}/cancel")).status_code == 202
        assert (await api.post(f"/api/jobs/{job['id']}/cancel")).status_code in (202, 409), "a double click is harmless"
        await eventually(lambda: _status_is(api, job["id"], "cancelled"), what="cancelled")
        again = await api.post(f"/api/jobs/{job['id']}/cancel")
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]

        # A worker that did not hear of the cancel in time reports on: the job stays cancelled.
        await publish(
            settings,
            ev.CrawlProgress(job_id=job["id"], data=ev.CrawlProgressData(pages_done=3, pages_estimated=4, progress=25)),
        )
        events = await eventually(lambda: _types(api, job["id"], "crawl.progress"), what="late progress projected")
        assert events.count("job.cancelled") == 1 and events.count("job.cancel_requested") == 1
        assert (await job_state(api, job["id"]))["status"] == "cancelled"
        assert (await api.post(f"/api/jobs/{job['id']}/retry")).status_code == 409


async def test_spent_attempts_fail_the_job_into_the_dlq_and_a_replay_restarts_it(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, **FAST)
    async with gateway(settings) as api:
        job = (await api.post("/api/jobs", json={"url": "https://example.com/", "priority": 8})).json()
        assert (await api.post(f"/api/jobs/{job['id']}/retry")).status_code == 409, "only failed jobs retry"

        await publish(settings, crawl_failed(job, 1))
        retried = await eventually(lambda: _types(api, job["id"], "job.retry_requested"), what="the scheduler's retry")
        assert retried.count("job.retry_requested") == 1
        await publish(settings, crawl_failed(job, 2))
        await eventually(lambda: _status_is(api, job["id"], "failed"), what="failed after 2 attempts")
        failed = await job_state(api, job["id"])
        assert failed["error"]["code"] == "unreachable" and failed["attempts"]["crawl"] == 2

        entries = await eventually(lambda: _dlq(api, job["id"]), what="the job's last message in the DLQ")
        entry = entries[0]
        assert (entry["event_type"], entry["reason"], entry["attempts"]) == ("crawl.failed", "attempts_exhausted", 2)
        # The message really is on jobs.dlq, with the headers that say where it came from.
        records = await read_topic(
            kafka_bootstrap, settings.topics.dlq, until=lambda rs: any(r.key == job["id"].encode() for r in rs)
        )
        record = next(r for r in records if r.key == job["id"].encode())
        assert header(record.headers, "dlq-source-topic") == settings.topics.events
        assert header(record.headers, "dlq-reason") == "attempts_exhausted"
        assert decode(record.value).type == "crawl.failed"

        replay = await api.post(f"/api/dlq/{entry['id']}/replay")
        assert replay.status_code == 202, replay.text
        assert replay.json()["replayed"]["attempt"] == 3
        revived = await eventually(lambda: _status_is(api, job["id"], "crawling"), what="the job restarted")
        assert revived["attempt"] == 3 and revived["finished_at"] is None
        records = await read_topic(
            kafka_bootstrap,
            settings.topics.events,
            until=lambda rs: (
                sum(
                    r.key == job["id"].encode() and header(r.headers, "event-type") == "job.retry_requested" for r in rs
                )
                == 2
            ),
        )
        assert {
            header(r.headers, "priority")
            for r in records
            if r.key == job["id"].encode() and header(r.headers, "event-type") == "job.retry_requested"
        } == {"8"}


async def test_a_poison_message_is_dead_lettered_once_and_cannot_be_replayed(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, **FAST)
    async with gateway(settings) as api:
        await publish(settings, raw=b"{not json")
        entries = await eventually(lambda: _json(api, "/api/dlq"), what="the poison message listed for the admin")
        poison = [e for e in entries["items"] if e["job_id"] is None]
        assert len(poison) == 1 and poison[0]["reason"] == "malformed_json"
        refused = await api.post(f"/api/dlq/{poison[0]['id']}/replay")
        assert refused.status_code == 422 and "could not be decoded" in refused.json()["detail"]
        # The pipeline goes on: a job submitted after the poison is projected.
        job = (await api.post("/api/jobs", json={"url": "https://example.com/"})).json()
        await eventually(lambda: _types(api, job["id"], "job.requested"), what="the next job projected")

        other = (await api.post("/api/admin/keys", json={"tenant": "other"})).json()["key"]
        seen = await api.get("/api/dlq", headers={"Authorization": f"Bearer {other}"})
        assert seen.status_code == 200 and seen.json()["items"] == [], "a tenant sees only its own dead letters"


async def test_pausing_a_stage_is_an_admin_command_on_the_control_topic(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with gateway(settings) as api:
        paused = await api.post("/api/admin/stages/crawl/pause")
        assert paused.status_code == 202 and paused.json()["state"] == "paused"
        assert (await api.post("/api/admin/stages/nope/pause")).status_code == 422
        records = await read_topic(kafka_bootstrap, settings.topics.control, until=lambda rs: len(rs) >= 1)
        event = decode(records[0].value)
        assert isinstance(event, ev.StagePaused) and event.data.stage == "crawl"


async def _status_is(api, job_id: str, status: str) -> dict | None:
    job = await job_state(api, job_id)
    return job if job["status"] == status else None


async def _types(api, job_id: str, wanted: str) -> list[str] | None:
    types = [e["type"] for e in (await api.get(f"/api/jobs/{job_id}/events")).json()]
    return types if wanted in types else None


async def _dlq(api, job_id: str) -> list[dict]:
    return (await api.get("/api/dlq", params={"job_id": job_id})).json()["items"]


async def _json(api, path: str) -> dict | None:
    body = (await api.get(path)).json()
    return body if body.get("items") else None
