"""The projector's batched write path against a real database: its document cache and its write order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, InvalidOperation

from sitewright_contracts import Topics, encode, uuid7
from sitewright_gateway.readmodel import audit
from sitewright_gateway.readmodel.group_insert import GroupInsert
from sitewright_gateway.readmodel.rules import new_job
from sitewright_gateway.readmodel.store import Store
from sitewright_gateway.readmodel.writer import Projection
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.mongo import connect
from tests.unit.test_projector import POLICY, story


def record(event, offset: int) -> ConsumerRecord:
    key, value, headers = encode(event)
    return ConsumerRecord("jobs.events", 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


async def test_projection_refolds_a_cached_job_that_another_writer_changed(kafka_bootstrap, mongo_url, unique):
    client = connect(mongo_url)
    store = Store(client[f"proj_{unique}"])
    publisher = Publisher(kafka_bootstrap, client_id="test", topics=Topics(f"t{unique}."))
    projection = Projection(store, publisher, POLICY, f"g{unique}", timedelta(days=7))
    events = story(uuid7())
    job_id = events[0].job_id
    await store.jobs.insert_one(new_job(events[0]))

    await projection([record(e, i) for i, e in enumerate(events[:2])])  # requested, crawl started: now cached
    doc = await store.jobs.find_one({"_id": job_id})
    assert doc["status"] == "crawling"
    # Another writer moves the version behind the projector's back (as a second projector after a rebalance would).
    await store.jobs.update_one({"_id": job_id}, {"$set": {"version": doc["version"] + 5, "marker": "kept"}})

    await projection([record(e, i + 2) for i, e in enumerate(events[2:4])])  # progress, crawl succeeded
    doc = await store.jobs.find_one({"_id": job_id})
    assert doc["status"] == "generating" and doc["progress"] == 40
    assert doc["marker"] == "kept"  # re-read and re-folded, not overwritten from the stale copy
    assert len(await audit.job_events(store.events, job_id)) == 4

    await projection([record(e, i + 4) for i, e in enumerate(events[4:])])  # through to completed
    doc = await store.jobs.find_one({"_id": job_id})
    assert doc["status"] == "completed" and doc["progress"] == 100
    assert await store.results.count_documents({"_id": job_id}) == 1
    await client.drop_database(f"proj_{unique}")
    await client.close()


async def test_a_duplicate_in_the_batch_does_not_change_the_state_recorded_for_the_original(
    kafka_bootstrap, mongo_url, unique
):
    """A stage that ran twice re-emits the same event ids; the audit trail keeps each event's own state.

    Otherwise what a replay records would depend on where the batches happen to split the log.
    """
    client = connect(mongo_url)
    stores = [Store(client[f"dup{n}_{unique}"]) for n in (1, 2)]
    publisher = Publisher(kafka_bootstrap, client_id="test", topics=Topics(f"t{unique}."))
    events = story(uuid7())
    log = [*events, *events[2:]]  # everything after the crawl started, delivered twice
    one_batch = Projection(stores[0], publisher, POLICY, f"g{unique}", timedelta(days=7))
    await one_batch([record(e, i) for i, e in enumerate(log)])
    one_by_one = Projection(stores[1], publisher, POLICY, f"g{unique}", timedelta(days=7))
    for i, e in enumerate(log):
        await one_by_one([record(e, i)])

    recorded = [
        {d["_id"]: (d["version"], d["job"]) for d in await audit.job_events(s.events, events[0].job_id)} for s in stores
    ]
    assert recorded[0] == recorded[1]
    assert [recorded[0][e.event_id][0] for e in events] == sorted(recorded[0][e.event_id][0] for e in events)
    for name in (f"dup1_{unique}", f"dup2_{unique}"):
        await client.drop_database(name)
    await client.close()


async def test_a_second_completion_of_a_job_does_not_replace_its_result(kafka_bootstrap, mongo_url, unique):
    """A stale attempt that comes back after a re-drive completes the job again, under another event id:
    the result must stay the one of the completion the job document shows, whatever the batches."""
    client = connect(mongo_url)
    store = Store(client[f"again_{unique}"])
    publisher = Publisher(kafka_bootstrap, client_id="test", topics=Topics(f"t{unique}."))
    projection = Projection(store, publisher, POLICY, f"g{unique}", timedelta(days=7))
    events = story(uuid7())
    first = events[-1]
    other = first.data.result.model_copy(update={"meta": first.data.result.meta.model_copy(update={"title": "Stale"})})
    again = first.model_copy(update={"event_id": uuid7(), "data": first.data.model_copy(update={"result": other})})
    # The same completion redelivered later (same id, a later time), and a stale attempt's: one batch.
    redelivered = first.model_copy(update={"occurred_at": first.occurred_at + timedelta(seconds=5)})
    await projection([record(e, i) for i, e in enumerate([*events, redelivered, again])])
    result = await store.results.find_one({"_id": first.job_id})
    assert result["event_id"] == first.event_id and result["meta"]["title"] == first.data.result.meta.title
    assert result["created_at"] == first.occurred_at.replace(microsecond=first.occurred_at.microsecond // 1000 * 1000)
    await client.drop_database(f"again_{unique}")
    await client.close()


async def test_a_crash_between_the_writes_of_a_batch_loses_no_result(kafka_bootstrap, mongo_url, unique, monkeypatch):
    """The results and the audit trail are written before the jobs: a reader who sees `completed` finds
    the result, and a redelivered batch writes the result again even if the job's write had landed."""
    client = connect(mongo_url)
    store = Store(client[f"crash_{unique}"])
    publisher = Publisher(kafka_bootstrap, client_id="test", topics=Topics(f"t{unique}."))
    events = story(uuid7())
    job_id = events[0].job_id
    batch = [record(e, i) for i, e in enumerate(events)]

    projection = Projection(store, publisher, POLICY, f"g{unique}", timedelta(days=7))
    real = AsyncCollection.insert_many

    async def results_down(self, *args, **kwargs):
        if self.name == "results":
            raise ConnectionError("the database went away")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "insert_many", results_down)
    with pytest.raises(ConnectionError):
        await projection(batch)
    assert await store.jobs.find_one({"_id": job_id}) is None  # not shown completed without its result

    monkeypatch.setattr(AsyncCollection, "insert_many", real)
    await projection(batch)
    assert (await store.jobs.find_one({"_id": job_id}))["status"] == "completed"
    # The job's write landed and the process died before anything else: the batch comes again, to a fresh process.
    await store.results.delete_many({})
    await store.events.delete_many({})
    again = Projection(store, publisher, POLICY, f"g{unique}", timedelta(days=7))
    await again(batch)
    result = await store.results.find_one({"_id": job_id})
    assert result is not None and result["event_id"] == events[-1].event_id
    assert len(await audit.job_events(store.events, job_id)) == len(events)
    await client.drop_database(f"crash_{unique}")
    await client.close()


async def test_concurrent_inserts_go_in_one_command_and_each_gets_its_own_outcome(mongo_url, unique):
    """The gateway's group commit for new jobs: a duplicate fails alone; a dead database fails every waiter."""
    client = connect(mongo_url)
    collection = client[f"group_{unique}"]["jobs"]
    await collection.insert_one({"_id": "taken"})
    commands = []
    group = GroupInsert(lambda: commands.append(1) or collection)

    outcomes = await asyncio.gather(
        *(group.insert({"_id": f"job{n}"}) for n in range(50)), group.insert({"_id": "taken"}), return_exceptions=True
    )
    assert outcomes[:50] == [None] * 50 and isinstance(outcomes[50], DuplicateKeyError)
    assert len(commands) == 1 and await collection.count_documents({}) == 51
    assert await group.insert({"_id": "alone"}) is None  # an idle group inserts at once

    await client.close()
    outcomes = await asyncio.gather(*(group.insert({"_id": f"late{n}"}) for n in range(3)), return_exceptions=True)
    assert all(isinstance(o, InvalidOperation) for o in outcomes), outcomes
    client = connect(mongo_url)
    await client.drop_database(f"group_{unique}")
    await client.close()
