"""The read model's indexes against the real database: what exists, what the scheduler's queries use, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import ASCENDING, DESCENDING

from sitewright_contracts import uuid7
from sitewright_gateway.readmodel.rules import due_at
from sitewright_gateway.readmodel.store import EPOCH, IDS_PER_QUERY, Store, by_ids
from sitewright_gateway.scheduler.loop import Scheduler, due
from sitewright_runtime.mongo import connect
from tests.integration.test_gateway_api import gateway_settings


def plan_stages(plan: dict) -> set[str]:
    stages, todo = set(), [plan]
    while todo:
        node = todo.pop()
        stages.add(node.get("stage"))
        todo += [n for k, n in node.items() if k.endswith("nputStage")] + node.get("inputStages", [])
    return stages


async def test_indexes_are_the_declared_ones_plus_an_operators_and_the_ticks_queries_use_them(mongo_url, unique):
    client = connect(mongo_url)
    store = Store(client[f"idx_{unique}"])
    # Indexes older versions declared: every write paid for each, so they must go. The scheduler's three
    # (an unpublished request, a due action, a TTL) became `due_at`: their documents get it first.
    await store.jobs.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
    await store.jobs.create_index([("tenant", ASCENDING), ("_id", DESCENDING)])  # a tenant's jobs, until 2026-12-02
    await store.jobs.create_index(
        [("created_at", ASCENDING)], name="outbox", partialFilterExpression={"published": False}
    )
    await store.jobs.create_index(
        [("action.due_at", ASCENDING)], name="actions", partialFilterExpression={"action.due_at": {"$gte": EPOCH}}
    )
    await store.jobs.create_index(
        [("expire_at", ASCENDING)],
        name="ttl_expire_at",
        expireAfterSeconds=0,
        partialFilterExpression={"expire_at": {"$gte": EPOCH}},
    )
    # An operator's own index: not Sitewright's to drop.
    await store.jobs.create_index([("url", ASCENDING)], name="ops_by_url")
    later = [
        datetime(2099, 1, day, tzinfo=UTC) for day in (1, 2, 3)
    ]  # BSON dates: milliseconds, and no TTL deletes them
    await store.jobs.insert_many(
        [
            {"_id": "unpublished", "published": False, "created_at": later[0], "action": None},
            {"_id": "retrying", "published": True, "action": {"kind": "retry", "due_at": later[1]}},
            {"_id": "finished", "published": True, "action": None, "expire_at": later[2]},
            {"_id": "running", "published": True, "action": None},
        ]
    )
    await store.create_indexes(timedelta(days=7))
    await store.create_indexes(timedelta(days=3))  # a new retention period rebuilds the TTL indexes
    jobs = {i["name"]: i async for i in await store.jobs.list_indexes()}
    assert set(jobs) == {"_id_", "status_1_tenant_1__id_-1", "due", "ops_by_url"}
    assert jobs["due"]["partialFilterExpression"] == {"due_at": {"$gte": EPOCH.replace(tzinfo=None)}}
    migrated = {d["_id"]: d async for d in store.jobs.find({})}
    assert {k: d.get("due_at") for k, d in migrated.items()} == {
        "unpublished": later[0],
        "retrying": later[1],
        "finished": later[2],
        "running": None,
    }
    assert not any("expire_at" in d for d in migrated.values())
    await store.jobs.delete_many({})
    results = {i["name"]: i async for i in await store.results.list_indexes()}
    assert results["ttl_created_at"]["expireAfterSeconds"] == 3 * 86400
    assert {i["name"] async for i in await store.events.list_indexes()} == {"_id_", "job_id_1"}

    now = datetime.now(UTC)
    await store.jobs.insert_many(
        [
            {"_id": uuid7(), "tenant": "t", "status": "completed", "published": True, "action": None, "created_at": now}
            for _ in range(50)
        ]
    )
    queries = [
        ("jobs", due(now)),
        ("jobs", {"status": "crawling"}),  # active jobs (stuck scan and gauges), one status at a time
        ("jobs", {"status": "crawling", "tenant": "t"}),  # a tenant's active jobs (streams, /api/status)
        ("jobs", {"tenant": "t", "status": "failed", "_id": {"$lt": uuid7()}}),  # GET /api/jobs, one status at a time
        ("jobs", {"status": "completed", "tenant": "t", "_id": {"$gte": uuid7()}}),  # /api/status's window, the same
        ("jobs", {"_id": {"$in": [uuid7()]}}),  # a stream's subscriptions (by_ids; the tenant is checked after)
        ("job_events", {"job_id": "j"}),  # a job's audit trail (its events, a job stream's resume)
        ("job_events", {"job_id": {"$in": ["j", "k"]}}),  # the events that made streamed jobs' versions
        ("job_events", {"job_id": {"$lt": uuid7()}}),  # retention
    ]
    for collection, query in queries:
        explained = await store.jobs.database.command("explain", {"find": collection, "filter": query})
        stages = plan_stages(explained["queryPlanner"]["winningPlan"])
        assert "IXSCAN" in stages and "COLLSCAN" not in stages, (collection, query, stages)
    await client.drop_database(f"idx_{unique}")
    await client.close()


@pytest.fixture
async def retained(kafka_bootstrap, mongo_url, unique):
    """A read model with its indexes and a 7-day retention, and a scheduler over it (nothing to publish)."""
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, retention_days=7)
    client = connect(mongo_url)
    store = Store(client[settings.mongo_db])
    await store.create_indexes(settings.retention)
    yield store, Scheduler(settings, store, publisher=None)  # type: ignore[arg-type]
    await client.drop_database(settings.mongo_db)
    await client.close()


async def test_the_audit_trail_of_jobs_past_retention_is_deleted(retained):
    store, scheduler = retained
    now = datetime.now(UTC)

    def job_created(days_ago: float) -> str:
        return uuid7(int((now - timedelta(days=days_ago)).timestamp() * 1000))

    old, kept, recent = job_created(9), job_created(7.5), job_created(0)  # retention 7 days, plus a day's grace
    await store.events.insert_many(
        [
            {"_id": uuid7(), "job_id": job_id, "version": v, "occurred_at": now}
            for job_id in (old, kept, recent)
            for v in (1, 2)
        ]
    )
    await scheduler.expire_events(now)
    left = {d["job_id"] async for d in store.events.find({})}
    assert left == {kept, recent}


async def test_a_job_is_deleted_one_retention_period_after_it_finished(retained):
    store, scheduler = retained
    now = datetime.now(UTC)

    def job(job_id: str, status: str, finished_days_ago: float | None) -> dict:
        doc = {
            "_id": job_id,
            "tenant": "t",
            "status": status,
            "published": True,
            "action": None,
            "finished_at": None if finished_days_ago is None else now - timedelta(days=finished_days_ago),
        }
        return doc | {"due_at": due_at(doc, scheduler.settings.retention)}

    await store.jobs.insert_many(
        [
            job("expired", "completed", 8),
            job("failed-long-ago", "failed", 7.01),
            job("kept", "completed", 6.9),
            job("revived", "crawling", None),  # failed long ago, then retried: active again, so no expiry
        ]
    )
    await scheduler.run_due(now)
    assert {d["_id"] async for d in store.jobs.find({})} == {"kept", "revived"}


async def test_documents_by_more_ids_than_one_query_takes_are_all_found(mongo_url, unique):
    client = connect(mongo_url)
    store = Store(client[f"ids_{unique}"])
    ids = [uuid7() for _ in range(2 * IDS_PER_QUERY + 7)]
    await store.jobs.insert_many([{"_id": job_id, "n": n} for n, job_id in enumerate(ids)])
    found = {d["_id"]: d async for d in by_ids(store.jobs, ids + ["absent"], {"n": 1})}
    assert sorted(found) == sorted(ids) and all(found[job_id]["n"] == n for n, job_id in enumerate(ids))
    await client.drop_database(f"ids_{unique}")
    await client.close()
