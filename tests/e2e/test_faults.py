"""Breaking the system on purpose: the whole stack as processes, a batch of jobs, and one fault at a time.

Every scenario ends with the same checks: every accepted job reached exactly
one final state, the read model agrees with what the job's events say, no
attempt was counted twice and no webhook was delivered twice. Each scenario
prints one line of numbers (jobs, seconds, recovery, duplicates, losses).
`SITEWRIGHT_FAULT_JOBS` sets the batch size (default 100).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner
from pymongo.asynchronous.collection import AsyncCollection

from sitewright_contracts import Topics
from sitewright_devstack.infra import free_port
from sitewright_devstack.sample_site import StaticSite
from sitewright_devstack.stack import Stack, StackConfig
from sitewright_gateway.config import GatewaySettings
from sitewright_gateway.readmodel import audit
from sitewright_gateway.readmodel.rebuild import canonical, digest, rebuild
from sitewright_gateway.readmodel.rules import RetryPolicy, state_as_of
from sitewright_gateway.readmodel.store import Store
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.mongo import connect
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(900)]

JOBS = int(os.environ.get("SITEWRIGHT_FAULT_JOBS", "100"))
STUCK_AFTER_S = 60  # well above the time a killed worker takes to come back and be redelivered its work
BACKOFF_S = [1, 12]
DELIVERY_LEASE_S = 20
TERMINAL = {"completed", "failed", "cancelled"}


class Hooks:
    """A webhook receiver that counts deliveries per job, and distinct delivery ids."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.ids: dict[str, set[str]] = {}
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                job_id = body.get("job_id") or (body.get("data") or {}).get("job_id")
                hooks.deliveries[job_id] += 1
                hooks.ids.setdefault(job_id, set()).add(self.headers.get("webhook-id", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 1024
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "SITEWRIGHT_STUCK_AFTER_S": str(STUCK_AFTER_S),
        "SITEWRIGHT_RETRY_BACKOFF_S": json.dumps(BACKOFF_S),
        "SITEWRIGHT_SCHEDULER_INTERVAL_S": "0.5",
        # Batches of 100 jobs go in as fast as the gateway takes them; the per-key rate limit is tested elsewhere.
        "SITEWRIGHT_RATE_JOBS_PER_S": "0",
        # A notifier killed mid-try leaves its delivery leased; the lease (above the 10 s webhook
        # timeout) decides when a new instance retries it.
        "SITEWRIGHT_DELIVERY_LEASE_S": str(DELIVERY_LEASE_S),
    }
    s = Stack(StackConfig(home=tmp_path_factory.mktemp("faults"), gateway_port=0, partitions=4, extra_env=env))
    asyncio.run(s.start())
    yield s
    s.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[StaticSite]:
    with StaticSite() as s:
        yield s


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.server.shutdown()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.headers, timeout=15) as client:
        await _ready(client)
        yield client


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[Store]:
    client = connect(stack.env()["SITEWRIGHT_MONGO_URL"])
    s = Store(client["sitewright"])
    await s.follow_active_model()
    yield s
    await client.close()


async def _ready(api: httpx.AsyncClient) -> None:
    async def ready():
        try:
            return (await api.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, timeout=90, what="gateway ready")


async def submit(api: httpx.AsyncClient, url: str, n: int = JOBS, hook: str | None = None) -> list[str]:
    body: dict = {"url": url, "options": {"max_pages": 2}}
    if hook:
        body["notify"] = [{"channel": "webhook", "target": hook}]
    # Many requests at once, as a busy client sends them: the batch is in the pipeline together, so
    # a fault hits dozens of jobs in flight rather than the last few of a trickle.
    slots = asyncio.Semaphore(16)

    async def one() -> str:
        async with slots:
            r = await api.post("/api/jobs", json=body)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def docs(store: Store, ids: list[str]) -> dict[str, dict]:
    return {d["_id"]: d async for d in store.jobs.find({"_id": {"$in": ids}})}


async def wait_final(store: Store, ids: list[str], timeout: float = 240) -> dict[str, dict]:
    async def final():
        found = await docs(store, ids)
        return found if len(found) == len(ids) and all(d["status"] in TERMINAL for d in found.values()) else None

    return await eventually(final, timeout=timeout, interval=0.5, what=f"{len(ids)} jobs in a final state")


async def check(
    store: Store,
    ids: list[str],
    *,
    expect: set[str] = frozenset({"completed"}),
    max_attempts: int = 1,
    hooks: Hooks | None = None,
) -> dict[str, int]:
    """The invariants every scenario ends with; returns counts for the report line."""
    jobs = await wait_final(store, ids)
    statuses = Counter(d["status"] for d in jobs.values())
    assert set(statuses) <= expect, statuses
    policy = RetryPolicy(max_attempts=3, backoff_s=tuple(BACKOFF_S))
    for job_id, doc in jobs.items():
        events = sorted(await audit.job_events(store.events, job_id), key=lambda e: (e["occurred_at"], e["_id"]))
        # A failed job may be retried (from the API or the DLQ) and end again: count from the last retry on.
        restarts = [i for i, e in enumerate(events) if e["type"] == "job.retry_requested"]
        last_run = events[restarts[-1] :] if restarts else events
        finals = {e["type"] for e in last_run if e["type"] in ("job.completed", "job.failed", "job.cancelled")}
        assert finals == {f"job.{doc['status']}"}, (job_id, doc["status"], finals)
        folded = state_as_of(events, datetime.now(UTC), policy)
        assert folded is not None and folded["status"] == doc["status"], (
            job_id,
            doc["status"],
            folded and folded["status"],
        )
        assert max(doc["attempts"].values()) <= max_attempts, (job_id, doc["attempts"])
    out = {"jobs": len(ids), "lost": len(ids) - len(jobs), **statuses}
    if hooks is not None:

        async def delivered() -> bool:
            return all(hooks.deliveries[i] >= 1 for i in ids)

        try:
            await eventually(delivered, timeout=DELIVERY_LEASE_S + 60, what="a webhook per job")
        except AssertionError:
            missing = [i for i in ids if hooks.deliveries[i] == 0]
            notes = [d async for d in store.db["deliveries"].find({"job_id": {"$in": missing}})]
            raise AssertionError(
                f"{len(missing)} jobs got no webhook: {missing[:5]}; their deliveries: {notes[:5]}"
            ) from None
        await asyncio.sleep(1)
        # One notification per job: one webhook-id. A delivery the receiver answered too slowly is retried
        # with the same id (Standard Webhooks receivers dedupe on it); those retries are counted, not failed.
        out["notifications_twice"] = sum(len(hooks.ids[i]) - 1 for i in ids)
        out["same_id_redeliveries"] = sum(hooks.deliveries[i] - len(hooks.ids[i]) for i in ids)
        assert out["notifications_twice"] == 0, {i: hooks.ids[i] for i in ids if len(hooks.ids[i]) > 1}
    return out


def report(name: str, **numbers: object) -> None:
    print(f"\nFAULT {name}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


async def some_active(store: Store, ids: list[str], status: str) -> bool:
    return await store.jobs.count_documents({"_id": {"$in": ids}, "status": status}) > 0


@pytest.mark.parametrize("victim", ["crawler", "generator", "notifier", "gateway"])
async def test_kill_9_mid_run_loses_nothing_and_repeats_nothing(stack, site, hooks, api, store, victim):
    started = time.monotonic()
    ids = await submit(api, site.url, hook=hooks.url)
    stage = {"crawler": "crawling", "generator": "generating", "notifier": "completed", "gateway": "crawling"}[victim]
    await eventually(lambda: some_active(store, ids, stage), timeout=120, what=f"jobs {stage}")
    stack.children[victim].kill()
    killed = time.monotonic()
    # What the kill interrupted: jobs not finished yet (for the notifier, webhooks not delivered yet).
    if victim == "notifier":
        in_flight = sum(1 for i in ids if hooks.deliveries[i] == 0)
    else:
        in_flight = len(ids) - await store.jobs.count_documents({"_id": {"$in": ids}, "finished_at": {"$ne": None}})
    stack.start_service(victim)
    await _ready(api)
    counts = await check(store, ids, hooks=hooks)
    report(
        f"kill -9 {victim}",
        seconds=round(time.monotonic() - started, 1),
        in_flight_at_kill=in_flight,
        after_kill_s=round(time.monotonic() - killed, 1),
        **counts,
    )
    assert in_flight > 0, "the kill came after the batch was done: it tested nothing"


async def test_a_second_instance_takes_over_when_the_first_dies(stack, site, hooks, store):
    names = ("gateway", "crawler", "generator", "notifier")
    for name in names:
        stack.start_service(name, "2")
    second = f"http://127.0.0.1:{stack.children['gateway2'].port}"

    def partition(job_id: str) -> int:  # where the publisher puts a job's events
        return DefaultPartitioner()(job_id.encode(), list(range(stack.config.partitions)), [])

    rest: asyncio.Task[list[str]] | None = None
    try:
        async with httpx.AsyncClient(base_url=second, headers=stack.headers, timeout=15) as api2:
            await _ready(api2)
            await asyncio.sleep(8)  # let the groups settle with two members each
            # Half the batch goes in before the kill and half after. The pipeline keeps up with one
            # gateway's submissions, so when the whole batch went in first, all but a few jobs were
            # finished at the kill and "6 more completed" could never happen, however good the takeover.
            ids = await submit(api2, site.url, n=JOBS // 2, hook=hooks.url)
            await eventually(lambda: some_active(store, ids, "crawling"), timeout=120, what="jobs crawling")
            earlier = [*ids, *[d["_id"] async for d in store.jobs.find({}, {"_id": 1})]]
            for name in names:
                stack.children[name].kill()
            killed = time.monotonic()
            rest = asyncio.create_task(submit(api2, site.url, n=JOBS - len(ids), hook=hooks.url))

            async def every_partition_progressed() -> bool:
                # The killed members owned some partitions of every group: jobs submitted after the kill
                # complete there only once the survivors have taken them over, so progress on all
                # partitions is the takeover.
                done = store.jobs.find({"status": "completed", "_id": {"$nin": earlier}}, {"_id": 1})
                return {partition(d["_id"]) async for d in done} == set(range(stack.config.partitions))

            await eventually(
                every_partition_progressed, timeout=60, what="the survivors completing jobs on every partition"
            )
            takeover = time.monotonic() - killed
            ids += await rest
            counts = await check(store, ids, hooks=hooks)
    finally:  # back to one instance of each on the stack's own ports, whatever happened, for the next scenarios
        if rest is not None and not rest.done():
            rest.cancel()
        for name in names:
            stack.children.pop(f"{name}2").stop()
            stack.children[name].stop()  # already dead unless the scenario failed before the kill
            stack.start_service(name)
    report(
        "two instances, one killed",
        takeover_s=round(takeover, 1),
        total_s=round(time.monotonic() - killed, 1),
        **counts,
    )
    assert takeover < 45


async def test_a_stage_that_fails_twice_then_succeeds_completes_on_the_third_attempt(stack, api, store):
    port = free_port()
    ids = await submit(api, f"http://127.0.0.1:{port}/")  # nothing listens there yet

    async def all_failed_twice():
        found = await docs(store, ids)
        return all(d["attempts"]["crawl"] == 2 and d["error"] for d in found.values()) and len(found) == len(ids)

    await eventually(all_failed_twice, timeout=120, interval=0.2, what="two failed attempts of every job")
    with StaticSite(port=port):
        counts = await check(store, ids, max_attempts=3)
        jobs = await docs(store, ids)
    assert all(d["attempts"]["crawl"] == 3 for d in jobs.values())
    report("fails twice, then succeeds", **counts)


async def test_an_always_failing_stage_ends_in_the_dlq_and_a_replay_completes_it(stack, api, store):
    port = free_port()
    ids = await submit(api, f"http://127.0.0.1:{port}/")
    counts = await check(store, ids, expect={"failed"}, max_attempts=3)
    jobs = await docs(store, ids)
    assert all(d["error"]["code"] and d["attempts"]["crawl"] == 3 for d in jobs.values())

    async def dead_letters():
        items = {}
        for job_id in ids:
            page = (await api.get("/api/dlq", params={"job_id": job_id})).json()["items"]
            if page:
                items[job_id] = page[0]
        return items if len(items) == len(ids) else None

    entries = await eventually(dead_letters, timeout=60, what="every failed job in the DLQ")
    with StaticSite(port=port):
        for entry in entries.values():
            assert (await api.post(f"/api/dlq/{entry['id']}/replay")).status_code == 202
        replayed = await check(store, ids, max_attempts=4)
    report("always fails, then DLQ replay", failed=counts.get("failed"), dlq_entries=len(entries), **replayed)


async def test_a_poison_message_is_set_aside_and_the_pipeline_goes_on(stack, site, api, store):
    publisher = Publisher(stack.bootstrap, "poisoner", Topics(stack.config.topic_prefix))
    await publisher.start()
    try:
        for i in range(3):
            await publisher.send_raw(
                Topics(stack.config.topic_prefix).events,
                key=f"poison-{i}".encode(),
                value=b"\x00not an event",
                headers=[("event-type", b"job.requested")],
            )
    finally:
        await publisher.stop()
    ids = await submit(api, site.url)
    counts = await check(store, ids)

    async def poison_listed():
        items = (await api.get("/api/dlq", params={"limit": 100})).json()["items"]
        return [e for e in items if e["job_id"] is None and e["reason"] == "malformed_json"]

    poison = await eventually(poison_listed, timeout=60, what="the poison in the DLQ")
    report("poison messages", poison_entries=len(poison), **counts)
    assert len(poison) >= 3


class SlowSite(StaticSite):
    """The sample site answering each page after a second, so crawls are mid-way when the crawler freezes."""

    def __init__(self) -> None:
        super().__init__()
        serve = self.server.finish_request

        def slow(request, address):  # type: ignore[no-untyped-def]
            time.sleep(1)
            serve(request, address)

        self.server.finish_request = slow  # type: ignore[method-assign]


async def test_a_frozen_worker_past_the_stuck_threshold_is_redriven_and_finishes_once(stack, api, store, hooks):
    with SlowSite() as slow:
        await _frozen_crawler_scenario(stack, api, store, hooks, slow.url)


async def _frozen_crawler_scenario(stack, api, store, hooks, url: str) -> None:
    ids = await submit(api, url, hook=hooks.url)
    await eventually(lambda: some_active(store, ids, "crawling"), timeout=120, what="jobs crawling")
    crawler = stack.children["crawler"].proc
    crawler.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        await asyncio.sleep(STUCK_AFTER_S + 5)
    finally:
        crawler.send_signal(signal.SIGCONT)
    counts = await check(store, ids, max_attempts=3, hooks=hooks)
    results = await store.results.count_documents({"_id": {"$in": ids}})
    events = [e for job_id in ids for e in await audit.job_events(store.events, job_id)]
    completed = sum(e["type"] == "job.completed" for e in events)
    redriven = sum(e["type"] == "job.retry_requested" for e in events)
    report(
        "SIGSTOP past the stuck threshold",
        frozen_s=STUCK_AFTER_S + 5,
        redriven=redriven,
        completed_events=completed,
        results=results,
        total_s=round(time.monotonic() - frozen, 1),
        **counts,
    )
    assert results == len(ids)
    assert redriven > 0, "the frozen crawler's jobs should have been driven again"


async def test_replaying_the_log_twice_gives_the_live_read_model(stack, site, api, store):
    ids = await submit(api, site.url, n=20)
    await wait_final(store, ids)
    settings = GatewaySettings(
        kafka_bootstrap=stack.bootstrap,
        mongo_url=stack.env()["SITEWRIGHT_MONGO_URL"],
        topic_partitions=stack.config.partitions,
        retry_backoff_s=BACKOFF_S,
        env="local",
    )
    # The live model is compared once it has stopped changing, and only if it did not change while
    # the log was replayed: late events of earlier scenarios' jobs (a notification retried on its
    # schedule, a DLQ replay) land in both, but at different moments.
    last: dict = {}

    async def settled() -> dict | None:
        nonlocal last
        await asyncio.sleep(2)
        now = await digest(store)
        stable, last = now == last, now
        return now if stable else None

    for _ in range(3):
        live = await eventually(settled, timeout=120, what="the live read model to stop changing")
        runs = []
        for n in (1, 2):
            report_ = await rebuild(settings, store, f"replay_{n}_{int(time.time())}")
            runs.append((report_, await digest(Store(store.db, store.db.client[report_.database]))))
        if await digest(store) == live:
            break
    (first, d1), (second, d2) = runs
    report(
        "replay twice",
        events=first.events,
        seconds=round(first.seconds, 1),
        jobs=live["jobs"]["documents"],
        digest=d1["sha256"][:16],
        equal_to_live=d1["sha256"] == live["sha256"],
    )
    assert d1 == d2, "two replays of one log must give identical read models"
    # The live projector may still be applying the tail the replays already read: the live model must
    # reach exactly the replayed one.
    try:
        await eventually(
            lambda: _equal(digest(store), d1), timeout=60, interval=1, what="the live read model to equal the replay"
        )
    except AssertionError:
        replayed = Store(store.db, store.db.client[first.database])
        raise AssertionError(
            f"a replay must give the live read model; differences: {await differences(store, replayed)}"
        ) from None


async def _equal(found: Awaitable[dict], expected: dict) -> bool:
    return await found == expected


async def differences(live: Store, replayed: Store, most: int = 3) -> list[tuple[str, str, dict]]:
    """The documents that differ, per collection, with the differing fields (live, replayed)."""
    found = []
    for name, ours_c, theirs_c in (
        ("jobs", live.jobs, replayed.jobs),
        ("job_events", live.events, replayed.events),
        ("results", live.results, replayed.results),
    ):
        # Compared as the digest hashes them (JSON text), which tells 40 from 40.0 where `==` does not.
        def docs(c: AsyncCollection, name: str = name) -> AsyncIterator[dict]:
            return audit.every_event(c) if name == "job_events" else c.find({})

        ours = {d["_id"]: canonical(d) async for d in docs(ours_c)}
        theirs = {d["_id"]: canonical(d) async for d in docs(theirs_c)}

        def text(v: object) -> str:
            return json.dumps(v, sort_keys=True, default=str)

        diff = [k for k in sorted(set(ours) | set(theirs)) if text(ours.get(k)) != text(theirs.get(k))]
        for key in diff[:most]:
            a, b = ours.get(key) or {}, theirs.get(key) or {}
            found.append(
                (
                    name,
                    key,
                    {k: (text(a.get(k)), text(b.get(k))) for k in set(a) | set(b) if text(a.get(k)) != text(b.get(k))},
                )
            )
    return found


async def test_the_broker_losing_its_log_mid_run_still_ends_every_job(stack, site, api, store):
    ids = await submit(api, site.url)
    await eventually(lambda: some_active(store, ids, "crawling"), timeout=120, what="jobs crawling")
    await stack.restart_broker()
    restarted = time.monotonic()
    counts = await check(store, ids, expect={"completed", "failed"}, max_attempts=3)
    report("broker restarted (log lost)", recovery_s=round(time.monotonic() - restarted, 1), **counts)
