"""The gateway against a real broker and database: write path, reads, validation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sitewright_gateway.config import GatewaySettings
from sitewright_gateway.main import create_app
from tests.helpers import AUTH, TEST_API_KEY, eventually


def gateway_settings(kafka: str, mongo: str, unique: str, **extra: object) -> GatewaySettings:
    return GatewaySettings(
        kafka_bootstrap=kafka,
        mongo_url=mongo,
        mongo_db=f"gw_{unique}",
        topic_prefix=f"t{unique}.",
        projector_group=f"projector-{unique}",
        env="local",
        topic_partitions=2,
        bootstrap_api_key=TEST_API_KEY,
        **extra,
    )


@contextlib.asynccontextmanager
async def gateway(
    settings: GatewaySettings, headers: dict[str, str] | None = None, app: FastAPI | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in this process (or `app`, made by the caller to reach its state);
    the client sends the test admin key unless `headers` says otherwise."""
    app = app or create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers=AUTH if headers is None else headers
        ) as client:
            yield client


async def test_a_job_accepted_while_the_log_is_unreachable_is_published_later(kafka_bootstrap, mongo_url, unique):
    """Published first, a job's document goes in marked published: one write. When the publish
    fails the job is accepted all the same, kept with its request, and the scheduler publishes it."""
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, outbox_grace_s=0.5, scheduler_interval_s=0.2)
    app = create_app(settings)
    async with gateway(settings, app=app) as client:
        state = app.state.gateway
        on_time = (await client.post("/api/jobs", json={"url": "https://example.com/a"})).json()["id"]
        doc = await state.store.jobs.find_one({"_id": on_time})
        assert doc["published"] is True and "outbox" not in doc and doc["traceparent"]

        await state.publisher.stop()  # the log is out of reach: every publish fails
        created = await client.post("/api/jobs", json={"url": "https://example.com/b"})
        assert created.status_code == 202, created.text
        deferred = created.json()["id"]
        doc = await state.store.jobs.find_one({"_id": deferred})
        assert doc["published"] is False and doc["outbox"]["data"]["url"] == "https://example.com/b"
        assert (await client.get(f"/api/jobs/{deferred}")).json()["status"] == "pending"

        await state.publisher.start()  # back: the scheduler's sweep publishes the kept request

        async def projected(job_id):
            events = (await client.get(f"/api/jobs/{job_id}/events")).json()
            return [e["type"] for e in events] == ["job.requested"] and events

        for job_id in (on_time, deferred):
            await eventually(
                lambda job_id=job_id: projected(job_id), timeout=30, what=f"the request of {job_id} on the log"
            )
        doc = await state.store.jobs.find_one({"_id": deferred})
        assert doc["published"] is True and "outbox" not in doc


async def test_get_after_post_finds_the_job_on_a_second_instance(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with gateway(settings) as first, gateway(settings) as second:
        created = await first.post("/api/jobs", json={"url": "https://example.com/", "priority": 7})
        assert created.status_code == 202, created.text
        body = created.json()
        assert body["status"] == "pending"
        assert body["links"]["self"] == f"/api/jobs/{body['id']}"
        assert created.headers["location"] == body["links"]["self"]

        found = await second.get(f"/api/jobs/{body['id']}")
        assert found.status_code == 200
        job = found.json()
        assert (job["status"], job["stage"], job["progress"], job["priority"]) == ("pending", "crawl", 0, 7)
        for field in ("id", "status", "stage", "progress", "attempts", "created_at", "updated_at", "error"):
            assert field in job

        async def request_projected():
            events = (await second.get(f"/api/jobs/{body['id']}/events")).json()
            return [e["type"] for e in events] == ["job.requested"] and events

        events = await eventually(request_projected, what="job.requested in the audit trail")
        assert events[0]["offset"] >= 0


async def test_the_gateway_records_a_published_request_so_the_projector_writes_nothing_for_it(
    kafka_bootstrap, mongo_url, unique
):
    """The document goes in at the place the broker gave the request, with the request's page of the
    audit trail; the projector then reads the request and has nothing to write. If that page could not
    be written, the document says so (no position) and the projector records the request itself, even
    when it read the request while the page was still being tried."""
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    app = create_app(settings)
    async with gateway(settings, app=app) as client:
        state = app.state.gateway
        job_id = (await client.post("/api/jobs", json={"url": "https://example.com/a"})).json()["id"]
        doc = await state.store.jobs.find_one({"_id": job_id})
        [page] = await state.store.events.find({"job_id": job_id}).to_list()
        [request] = page["events"]
        assert request["type"] == "job.requested" and request["version"] == doc["version"]
        assert doc["position"] == {"partition": request["partition"], "offset": request["offset"]}

        # Its own topics: the request is the only event the projector has to read.
        async def read():
            return state.projection.applied == 1

        await eventually(read, what="the projector reading the request")
        assert await state.store.jobs.find_one({"_id": job_id}) == doc  # not written again
        assert await state.store.events.count_documents({"job_id": job_id}) == 1

        for delay_s in (0, 1):  # at 1 s the projector reads the request while the page is still being tried

            async def unwritable(page, delay_s=delay_s):
                await asyncio.sleep(delay_s)
                raise ConnectionError("database gone")

            state.page_inserts.insert = unwritable
            job_id = (await client.post("/api/jobs", json={"url": f"https://example.com/{delay_s}"})).json()["id"]

            async def recorded(job_id=job_id):  # its page first, then the document at its position
                events = (await client.get(f"/api/jobs/{job_id}/events")).json()
                doc = await state.store.jobs.find_one({"_id": job_id}) or {}
                at = [(e["type"], {"partition": e["partition"], "offset": e["offset"]}) for e in events]
                return at == [("job.requested", doc.get("position"))]

            await eventually(recorded, what="the projector recording the request, page and position")


async def test_invalid_input_gets_a_clear_422_and_oversized_bodies_a_413(kafka_bootstrap, mongo_url, unique):
    async with gateway(gateway_settings(kafka_bootstrap, mongo_url, unique)) as api:
        cases = {
            "not a url": "absolute URL",
            "ftp://example.com/file": "scheme 'ftp' is not supported",
            "https://": "absolute URL",
            "https://example.com:99999/": "port",
        }
        for url, message in cases.items():
            r = await api.post("/api/jobs", json={"url": url})
            assert r.status_code == 422, (url, r.text)
            assert message in r.json()["message"], (url, r.json())

        r = await api.post("/api/jobs", json={"url": "https://example.com/", "options": {"max_pages": 100000}})
        assert r.status_code == 422 and "options.max_pages" in r.json()["message"]
        r = await api.post("/api/jobs", json={"url": "https://example.com/", "options": {"bogus": 1}})
        assert r.status_code == 422 and "bogus" in r.json()["message"]
        r = await api.post("/api/jobs", json={"url": "https://example.com/" + "a" * 3000})
        assert r.status_code == 422 and "at most 2048 characters" in r.json()["message"]
        r = await api.post(
            "/api/jobs",
            json={"url": "https://example.com/", "notify": [{"channel": "webhook", "target": "file:///etc/passwd"}]},
        )
        assert r.status_code == 422 and "http:// or https://" in r.json()["message"]

        r = await api.post(
            "/api/jobs",
            content=b'{"url": "https://example.com/", "pad": "' + b"x" * 100_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413 and "larger than" in r.json()["detail"]
        assert (await api.get("/api/jobs/does-not-exist")).status_code == 404


async def test_production_refuses_private_addresses_at_submission(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique).model_copy(update={"allow_cidrs": []})
    async with gateway(settings) as api:
        for url in (
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:10.0.0.1]/",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
        ):
            r = await api.post("/api/jobs", json={"url": url})
            assert r.status_code == 422, url
            assert "blocked_address" in r.json()["detail"], r.json()


async def test_listing_filters_by_status_and_pages_with_a_cursor(kafka_bootstrap, mongo_url, unique):
    async with gateway(gateway_settings(kafka_bootstrap, mongo_url, unique)) as api:
        ids = [(await api.post("/api/jobs", json={"url": f"https://example.com/{i}"})).json()["id"] for i in range(5)]
        seen, cursor = [], None
        while True:
            page = (await api.get("/api/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
            seen += [j["id"] for j in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        pending = (await api.get("/api/jobs", params={"status": "pending", "limit": 100})).json()["items"]
        assert {j["id"] for j in pending} == set(ids)
        assert (await api.get("/api/jobs", params={"status": "completed"})).json()["items"] == []
        assert (await api.get("/api/jobs", params={"status": "nope"})).status_code == 422


async def test_idempotency_key_returns_the_same_job(kafka_bootstrap, mongo_url, unique):
    async with gateway(gateway_settings(kafka_bootstrap, mongo_url, unique)) as api:
        headers = {"Idempotency-Key": "order-42"}
        first = await api.post("/api/jobs", json={"url": "https://example.com/"}, headers=headers)
        again = await api.post("/api/jobs", json={"url": "https://example.com/"}, headers=headers)
        assert first.status_code == 202 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        other = await api.post("/api/jobs", json={"url": "https://example.org/"}, headers=headers)
        assert other.status_code == 422 and "different request" in other.json()["detail"]


async def test_an_idempotency_key_whose_request_died_is_taken_over_not_refused_for_days(
    kafka_bootstrap, mongo_url, unique
):
    """A request that claimed its key and died before recording its job leaves a claim with no job: a retry
    gets 409 while that request could still be alive, then takes the key over (not 409 for the key's 7 days)."""
    from datetime import timedelta

    from sitewright_gateway.intake import STALE_CLAIM
    from sitewright_gateway.web.schemas import JobCreate

    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    app = create_app(settings)
    body = {"url": "https://example.com/died"}
    fingerprint = hashlib.sha256(JobCreate.model_validate(body).model_dump_json().encode()).hexdigest()
    async with gateway(settings, app=app) as api:
        claims = app.state.gateway.store.idempotency
        claim = {"_id": "default:order-7", "job_id": "01-never-recorded", "fingerprint": fingerprint}
        await claims.insert_one(claim | {"created_at": datetime.now(UTC)})
        fresh = await api.post("/api/jobs", json=body, headers={"Idempotency-Key": "order-7"})
        assert fresh.status_code == 409 and "still being accepted" in fresh.json()["detail"]

        await claims.update_one({"_id": claim["_id"]}, {"$set": {"created_at": datetime.now(UTC) - 2 * STALE_CLAIM}})
        taken = await api.post("/api/jobs", json=body, headers={"Idempotency-Key": "order-7"})
        again = await api.post("/api/jobs", json=body, headers={"Idempotency-Key": "order-7"})
    assert taken.status_code == 202 and again.status_code == 200 and again.json()["id"] == taken.json()["id"]
    assert STALE_CLAIM < timedelta(days=7)


async def test_health_readiness_metrics_and_docs(kafka_bootstrap, mongo_url, unique):
    async with gateway(gateway_settings(kafka_bootstrap, mongo_url, unique)) as api:
        assert (await api.get("/healthz")).json() == {"status": "ok"}
        ready = await eventually(lambda: _ready(api), what="readyz")
        assert ready["checks"] == {"publisher": True, "projector": True, "mongodb": True}
        assert "sitewright_jobs_created_total" in (await api.get("/metrics")).text
        assert (await api.get("/docs")).status_code == 200
        assert "/api/jobs" in (await api.get("/openapi.json")).json()["paths"]


async def _ready(api: httpx.AsyncClient):
    r = await api.get("/readyz")
    return r.status_code == 200 and r.json()


async def test_api_keys_gate_every_route_and_scope_jobs_to_their_tenant(kafka_bootstrap, mongo_url, unique):
    async with gateway(gateway_settings(kafka_bootstrap, mongo_url, unique)) as admin:
        missing = await admin.get("/api/jobs", headers={"Authorization": ""})
        assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["detail"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert (await admin.get("/api/jobs", headers={"Authorization": "Bearer sw_nope"})).status_code == 401

        made = await admin.post("/api/admin/keys", json={"tenant": "acme", "name": "ci"})
        assert made.status_code == 201, made.text
        acme = {"Authorization": f"Bearer {made.json()['key']}"}
        assert (await admin.post("/api/admin/keys", headers=acme, json={"tenant": "x"})).status_code == 403

        job_id = (await admin.post("/api/jobs", headers=acme, json={"url": "https://example.com/"})).json()["id"]
        assert (
            await admin.get(f"/api/jobs/{job_id}", headers={"Authorization": "", "X-API-Key": made.json()["key"]})
        ).status_code == 200
        assert (await admin.get(f"/api/jobs/{job_id}")).status_code == 404, "the default tenant must not see acme's job"
        assert job_id not in [j["id"] for j in (await admin.get("/api/jobs")).json()["items"]]

        assert (await admin.delete(f"/api/admin/keys/{made.json()['key_id']}")).status_code == 204
        revoked = await admin.get(f"/api/jobs/{job_id}", headers=acme)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


async def test_bulk_submission_answers_each_item_and_admission_control_refuses_past_the_limit(
    kafka_bootstrap, mongo_url, unique
):
    settings = gateway_settings(
        kafka_bootstrap, mongo_url, unique, admission_max_active_per_tenant=5, rate_jobs_burst=1000
    )
    async with gateway(settings) as api:
        good = [{"url": f"https://site{i}.example/"} for i in range(7)]
        jobs = [*good[:4], {"url": "ftp://files.example/"}, {"url": "https://x.example/", "colour": "red"}, *good[4:]]
        r = await api.post("/api/jobs/bulk", json={"jobs": jobs})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted"], body["refused"]) == (5, 4)
        assert [i["status"] for i in body["items"]] == [202, 202, 202, 202, 422, 422, 202, 429, 429]
        assert [i["index"] for i in body["items"]] == list(range(9))
        invalid, extra = body["items"][4:6]
        assert "http://" in invalid["error"] and "colour" in extra["error"]
        refused = body["items"][-1]
        assert "the limit is 5" in refused["error"] and refused["retry_after_s"] >= 1 and refused["id"] is None
        first = body["items"][0]
        assert (await api.get(first["links"]["self"])).json()["url"] == "https://site0.example/"

        # Every accepted job is unfinished (no workers run here): one more is refused, with Retry-After.
        single = await api.post("/api/jobs", json={"url": "https://one-more.example/"})
        assert single.status_code == 429 and int(single.headers["retry-after"]) >= 1
        assert "unfinished" in single.json()["detail"]

        # The limit is per tenant: another tenant's jobs are still admitted.
        made = (await api.post("/api/admin/keys", json={"tenant": "acme", "name": "ci"})).json()
        other = await api.post("/api/jobs", json=good[0], headers={"Authorization": f"Bearer {made['key']}"})
        assert other.status_code == 202, other.text

        assert (await api.post("/api/jobs/bulk", json={"jobs": []})).status_code == 422
        too_many = await api.post("/api/jobs/bulk", json={"jobs": [good[0]] * 1001})
        assert too_many.status_code == 422


async def test_bulk_items_past_the_keys_rate_limit_are_refused_each_with_when_to_retry(
    kafka_bootstrap, mongo_url, unique
):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, rate_jobs_burst=3, rate_jobs_per_s=0.5)
    async with gateway(settings) as api:
        r = await api.post("/api/jobs/bulk", json={"jobs": [{"url": f"https://s{i}.example/"} for i in range(5)]})
    statuses = [i["status"] for i in r.json()["items"]]
    assert statuses == [202, 202, 202, 429, 429]
    limited = r.json()["items"][3]
    assert "API key" in limited["error"] and limited["retry_after_s"] >= 1
