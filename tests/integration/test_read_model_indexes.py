"""The read model's indexes against the real database: what exists, what the scheduler's queries use, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING
from sitewright_contracts import uuid7
from sitewright_gateway.scheduler import Scheduler, due_actions, unpublished
from sitewright_gateway.store import Store
from sitewright_runtime.mongo import connect

from tests.integration.test_gateway_api import gateway_settings


def plan_stages(plan: dict) -> set[str]:
    stages, todo = set(), [plan]
    while todo:
        node = todo.pop()
        stages.add(node.get("stage"))
        todo += [n for k, n in node.items() if k.endswith("nputStage")] + node.get("inputStages", [])
    return stages


async def test_indexes_are_exactly_the_declared_ones_and_the_ticks_queries_use_them(mongo_url, unique):
    client = connect(mongo_url)
    store = Store(client[f"idx_{unique}"])
    # An index an older version declared: every write paid for it, so it must go.
    await store.jobs.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
    await store.create_indexes(timedelta(days=7))
    await store.create_indexes(timedelta(days=3))  # a new retention period rebuilds the TTL indexes
    jobs = {i["name"]: i async for i in await store.jobs.list_indexes()}
    assert "status_1_updated_at_1" not in jobs
    assert set(jobs) == {"_id_", "tenant_1__id_-1", "status_1_tenant_1__id_-1", "outbox", "actions", "ttl_expire_at"}
    assert jobs["outbox"]["partialFilterExpression"] == {"published": False}
    assert jobs["ttl_expire_at"]["expireAfterSeconds"] == 0
    results = {i["name"]: i async for i in await store.results.list_indexes()}
    assert results["ttl_created_at"]["expireAfterSeconds"] == 3 * 86400
    assert {i["name"] async for i in await store.events.list_indexes()} == {"_id_", "job_id_1_version_1"}

    now = datetime.now(UTC)
    await store.jobs.insert_many([
        {"_id": uuid7(), "tenant": "t", "status": "completed", "published": True, "action": None, "created_at": now}
        for _ in range(50)
    ])
    queries = [
        ("jobs", unpublished(now)),
        ("jobs", due_actions(now)),
        ("jobs", {"status": "crawling"}),  # active jobs (stuck scan and gauges), one status at a time
        ("jobs", {"status": "crawling", "tenant": "t"}),  # a tenant's active jobs (streams, /api/status)
        ("jobs", {"tenant": "t", "status": "failed", "_id": {"$lt": uuid7()}}),  # GET /api/jobs?status=&cursor=
        ("jobs", {"_id": {"$in": [uuid7()]}, "tenant": "t"}),  # a stream's subscriptions
        ("jobs", {"tenant": "t", "_id": {"$gte": uuid7()}}),  # /api/status's window
        ("job_events", {"job_id": "j", "version": {"$gt": 3}}),  # a job stream's resume
        ("job_events", {"job_id": {"$lt": uuid7()}}),  # retention
    ]
    for collection, query in queries:
        explained = await store.jobs.database.command("explain", {"find": collection, "filter": query})
        stages = plan_stages(explained["queryPlanner"]["winningPlan"])
        assert "IXSCAN" in stages and "COLLSCAN" not in stages, (collection, query, stages)
    await client.drop_database(f"idx_{unique}")
    await client.close()


async def test_the_audit_trail_of_jobs_past_retention_is_deleted(kafka_bootstrap, mongo_url, unique):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique, retention_days=7)
    client = connect(mongo_url)
    store = Store(client[settings.mongo_db])
    await store.create_indexes(settings.retention)
    now = datetime.now(UTC)

    def job_created(days_ago: float) -> str:
        return uuid7(int((now - timedelta(days=days_ago)).timestamp() * 1000))

    old, kept, recent = job_created(9), job_created(7.5), job_created(0)  # retention 7 days, plus a day's grace
    await store.events.insert_many([
        {"_id": uuid7(), "job_id": job_id, "version": v, "occurred_at": now} for job_id in (old, kept, recent) for v in (1, 2)
    ])
    await Scheduler(settings, store, publisher=None).expire_events(now)  # type: ignore[arg-type]
    left = {d["job_id"] async for d in store.events.find({})}
    assert left == {kept, recent}
    await client.drop_database(settings.mongo_db)
    await client.close()
