"""The audit trail (`job_events`): stored a page per job and projector batch, read back one event at a time.

A page holds the events of one job that one batch applied, in log order. One document per
event cost the projector an insert and an index entry per event; a job's events mostly arrive
a few to a batch, so pages cut the trail's writes about threefold live and further in a replay
(`bench/README.md`, "Audit pages").

A page's `_id` is its first event's id and its length: a redelivered batch that splits the log
where the first did writes the same page again (a duplicate key, skipped); one that splits it
elsewhere writes a page that overlaps another. Readers therefore see the trail through
`events_of`, which keeps one copy of each event: the one recorded when it was first applied (the
lowest job version, then the earliest log position), so what readers see does not depend on
where batches split the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from sitewright_contracts import events as ev

Doc = dict[str, Any]


def entry(event: ev.Event, position: tuple[int, int], after: Doc | None) -> Doc:
    """One event of a page. `after` is the job document right after it: its `version` and `job`
    state let job streams replay a job's versions from the trail."""
    return {
        "event_id": event.event_id,
        "type": event.type,
        "attempt": event.attempt,
        "occurred_at": event.occurred_at,
        "producer": event.producer,
        "partition": position[0],
        "offset": position[1],
        "data": event.data.model_dump(mode="json", by_alias=True),
        "version": after["version"] if after else None,
        "job": job_state(after) if after else None,
    }


def job_state(doc: Doc) -> Doc:
    """What a job stream reports of a job: its state right after an event (stored with the event)."""
    return {k: doc.get(k) for k in ("status", "stage", "progress", "attempt", "error", "url")}


def page(job_id: str, tenant: str, entries: list[Doc]) -> Doc:
    """The page of one job's `entries` (log order)."""
    return {"_id": f"{entries[0]['event_id']}:{len(entries)}", "job_id": job_id, "tenant": tenant, "events": entries}


def events_of(pages: Iterable[Doc]) -> list[Doc]:
    """Every event of `pages` as it was first recorded, one document each in log order:
    `{"_id": event_id, "job_id", "tenant", "type", ..., "version", "job"}`."""
    first: dict[str, Doc] = {}
    for p in pages:
        # A read model from before pages holds a document per event: a page of one.
        for e in p["events"] if "events" in p else [{"event_id": p["_id"], **p}]:
            known = first.get(e["event_id"])
            if known is None or _recorded_first(e) < _recorded_first(known):
                first[e["event_id"]] = e | {"job_id": p["job_id"], "tenant": p["tenant"]}
    docs = [{"_id": e["event_id"], **{k: v for k, v in e.items() if k != "event_id"}} for e in first.values()]
    return sorted(docs, key=lambda d: (d["partition"], d["offset"]))


def _recorded_first(e: Doc) -> tuple[float, int, int]:
    return (float("inf") if e["version"] is None else e["version"], e["partition"], e["offset"])


async def every_event(collection: AsyncCollection) -> AsyncIterator[Doc]:
    """Every event of the trail, job by job (in job id order) and by event id within a job."""
    pages: list[Doc] = []
    async for p in collection.find({}).sort("job_id", 1):
        if pages and p["job_id"] != pages[0]["job_id"]:
            for doc in sorted(events_of(pages), key=lambda d: d["_id"]):
                yield doc
            pages = []
        pages.append(p)
    for doc in sorted(events_of(pages), key=lambda d: d["_id"]):
        yield doc


async def job_events(collection: AsyncCollection, job_id: str, projection: Doc | None = None) -> list[Doc]:
    """One job's events in log order, found by job (the trail's one index)."""
    return events_of([p async for p in collection.find({"job_id": job_id}, projection)])
