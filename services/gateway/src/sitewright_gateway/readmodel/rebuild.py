"""Rebuilding the read model from the log, and proving two read models equal.

`rebuild` replays `jobs.events` from the beginning (no consumer group, so
the live projector is untouched) into a fresh database with the same
`Projection` the gateway runs, then, when asked, makes it the active one and
keeps applying for a settle period so that events the live projector wrote
to the old database during the switch are in the new one too (applying an
event twice changes nothing).

`digest` hashes the log-derived documents, leaving out the fields that
record the gateway's own bookkeeping rather than the log (whether a request
was published yet, when the scheduler last acted), so a rebuilt model and
the live one compare equal exactly when they say the same thing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from sitewright_runtime.kafka import Publisher
from sitewright_runtime.logs import get_logger
from sitewright_runtime.mongo import ACTIVE_MODEL

from ..config import GatewaySettings
from . import audit
from .documents import JobDocument
from .store import Store
from .writer import Projection

log = get_logger(__name__)

# Written by the gateway's write path and scheduler, not derived from the log.
BOOKKEEPING = {"published", "outbox", "redriven_at", "traceparent", "notify_reconciled_at"}
ACTION_BOOKKEEPING = {"emitted_at"}


def canonical(doc: JobDocument | dict[str, Any]) -> dict[str, Any]:
    """The job document as the log alone determines it: without the bookkeeping fields (`documents.JobDocument`)."""
    doc = {k: v for k, v in doc.items() if k not in BOOKKEEPING}
    if isinstance(doc.get("action"), dict):
        doc["action"] = {k: v for k, v in doc["action"].items() if k not in ACTION_BOOKKEEPING}
    return doc


async def digest(store: Store) -> dict[str, Any]:
    """SHA-256 over the canonical documents of each log-derived collection, in `_id` order; the audit
    trail's as events, job by job (`audit.every_event`), whatever pages the batches split them into."""
    out: dict[str, Any] = {}
    for name, docs in (
        ("jobs", store.jobs.find({}).sort("_id", 1)),
        ("job_events", audit.every_event(store.events)),
        ("results", store.results.find({}).sort("_id", 1)),
    ):
        h = hashlib.sha256()
        count = 0
        async for doc in docs:
            h.update(json.dumps(canonical(doc), sort_keys=True, default=str).encode())
            count += 1
        out[name] = {"documents": count, "sha256": h.hexdigest()}
    out["sha256"] = hashlib.sha256(
        "".join(out[n]["sha256"] for n in ("jobs", "job_events", "results")).encode()
    ).hexdigest()
    return out


@dataclass
class RebuildReport:
    database: str
    events: int
    seconds: float
    switched: bool


async def rebuild(
    settings: GatewaySettings,
    base: Store,
    into: str,
    *,
    switch: bool = False,
    settle_s: float = 10.0,
    idle_s: float = 1.0,
) -> RebuildReport:
    """Replay the whole events topic into database `into`; with `switch`, make it the active read model."""
    target = Store(base.db, base.db.client[into])
    await target.create_indexes(settings.retention)
    publisher = Publisher(settings.kafka_bootstrap, client_id="rebuild", topics=settings.topics)
    await publisher.start()
    projection = Projection(
        target, publisher, settings.retry_policy, "rebuild", settings.retention, settings.notify_reconcile_after
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    started = time.monotonic()
    switched = False
    try:
        partitions = consumer.partitions_for_topic(settings.topics.events) or set()
        tps = [TopicPartition(settings.topics.events, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        await _replay(consumer, projection, tps, idle_s)
        if switch:
            await base.meta.update_one({"_id": ACTIVE_MODEL}, {"$set": {"db": into}}, upsert=True)
            switched = True
            log.info("read_model_switched", db=into)
            # Gateways follow within a scheduler tick; until then the live projector may still write to the
            # old database, so keep applying the tail of the log for a while.
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline:
                await _replay(consumer, projection, tps, idle_s=0.2)
                await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await publisher.stop()
    return RebuildReport(
        database=into, events=projection.applied, seconds=time.monotonic() - started, switched=switched
    )


async def _replay(consumer: AIOKafkaConsumer, projection: Projection, tps: list[TopicPartition], idle_s: float) -> None:
    """Apply records until every partition is at its end offset and nothing arrived for `idle_s`."""
    quiet_since = time.monotonic()
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=1000)
        records = [r for recs in batches.values() for r in recs]
        if records:
            await projection(records)
            quiet_since = time.monotonic()
            continue
        ends = await consumer.end_offsets(tps)
        caught_up = all([await consumer.position(tp) >= ends[tp] for tp in tps])
        if caught_up and time.monotonic() - quiet_since >= idle_s:
            return
