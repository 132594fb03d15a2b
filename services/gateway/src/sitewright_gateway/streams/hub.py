"""Fans job updates out to stream connections (the WebSocket and SSE routes in `routes/streams.py`).

Every gateway instance runs one hub. While any stream connection is open (and
a minute after), it tails inserts into `job_events` (the audit trail's pages,
`audit.py`) with a MongoDB change stream: the projector stores with each event
the job's version and state right after that event, and whichever instance projected an
event, every instance's hub sees it. One update per job version goes to every
connection following that job, encoded once.

No gap, no duplicate: a subscription is registered (live updates for the job
start being held) before the job's backlog or current state is read, then the
backlog is sent, then what was held, dropping any version at or below the last
one sent. A live version that skips one (an out-of-order insert) makes the
connection read the missing versions from the audit trail before going on.

A connection never blocks the hub: updates go into its bounded outbox, and a
client whose outbox overflows is dropped (it resumes with `since`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import Counter, Gauge
from pymongo.asynchronous.collection import AsyncCollection

from sitewright_runtime.logs import get_logger

from ..readmodel import audit
from ..readmodel.store import Store, active_jobs, by_ids
from ..web.auth import Principal
from .connection import Connection
from .messages import CLOSE_RESTART, CLOSE_UNAUTHORIZED, Update

log = get_logger(__name__)

MAX_JOBS_PER_CONNECTION = 1000
SNAPSHOT_LIMIT = 1000  # `all`: the current version of at most this many active jobs, newest first
BACKLOG_LIMIT = 10_000
RESTART_BACKOFF_S = 1.0
# How often open streams' keys are checked for revocation: within the API's own delay (auth.KEY_CACHE_S).
KEY_CHECK_S = 2.0
IDLE_POLL_MS = 500  # an idle change stream returns this often, so a switch of read model is noticed

STREAM_CONNECTIONS = Gauge("sitewright_stream_connections", "Open job stream connections on this gateway.")
STREAM_UPDATES = Counter("sitewright_stream_updates_total", "Job versions the hub received from the change stream.")

# What a stream needs of the audit trail's pages (`audit.py`): not the events' data.
_PAGE_FIELDS = {
    "job_id": 1,
    "tenant": 1,
    **{f"events.{k}": 1 for k in ("event_id", "type", "occurred_at", "version", "job", "partition", "offset")},
}
_JOB_FIELDS = {
    "tenant": 1,
    "version": 1,
    "status": 1,
    "stage": 1,
    "progress": 1,
    "attempt": 1,
    "error": 1,
    "url": 1,
    "updated_at": 1,
}


def _version_order(event: dict[str, Any]) -> tuple[int, int]:
    return event["version"], event["offset"]


class TooManyStreams(Exception):
    pass


class BadSubscription(ValueError):
    pass


class Hub:
    """The per-gateway fan-out: one change stream in (open while anyone follows), many connections out."""

    def __init__(
        self,
        store: Store,
        *,
        max_per_key: int,
        queue_size: int,
        idle_close_s: float,
        revoked: Callable[[set[str]], Awaitable[set[str]]] | None = None,
    ):
        self.store = store
        # Which of these key ids are revoked (`KeyStore.revoked`): their open streams close within KEY_CHECK_S.
        self.revoked = revoked
        self._next_key_check = 0.0
        self.max_per_key = max_per_key
        self.queue_size = queue_size
        self.idle_close_s = idle_close_s
        self.connections: set[Connection] = set()
        self._per_key: dict[str, int] = {}
        self._by_job: dict[str, set[Connection]] = {}
        self._by_tenant: dict[str, set[Connection]] = {}
        self._stream: Any = None
        self._watching = ""
        self._task: asyncio.Task | None = None
        self._opening = asyncio.Lock()
        self._idle_since: float | None = None
        self.received = 0

    @property
    def following(self) -> bool:
        """Whether the change stream is open (it is while any stream connection is, and a while after)."""
        return self._task is not None

    async def _follow(self) -> None:
        """Open the change stream unless it is: every insert from here on is seen.

        Opened on demand: with no stream connection the change stream would cost the database a
        pass over every write (about 6 % of its CPU at full load) for nobody.
        """
        async with self._opening:
            self._idle_since = None
            if self._task is None:
                self._stream = await self._watch(None)
                self._task = asyncio.create_task(self._tail())

    async def _close_if_idle(self) -> bool:
        """Close the change stream when no connection has been open for `idle_close_s`."""
        async with self._opening:
            idle = (
                self._idle_since is not None
                and asyncio.get_running_loop().time() - self._idle_since >= self.idle_close_s
            )
            if not idle or self.connections:
                return False
            await self._stream.close()
            self._stream, self._task, self._idle_since = None, None, None
            log.info("stream_feed_closed", idle_s=self.idle_close_s)
            return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.end_streams()
        if self._stream is not None:
            await self._stream.close()

    def end_streams(self) -> None:
        """Tell every client the gateway is going away (they reconnect elsewhere with `since`)."""
        for conn in list(self.connections):
            conn.drop(CLOSE_RESTART, "shutting_down", "the gateway is shutting down; reconnect with `since`")

    @property
    def events(self) -> AsyncCollection:
        return self.store.events

    @property
    def jobs_collection(self) -> AsyncCollection:
        return self.store.jobs

    async def _watch(self, resume_after: Any) -> Any:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"operationType": "insert"}},
            {"$project": {"operationType": 1, **{f"fullDocument.{k}": 1 for k in ("_id", *_PAGE_FIELDS)}}},
        ]
        self._watching = self.events.full_name
        return await self.events.watch(pipeline, resume_after=resume_after, max_await_time_ms=IDLE_POLL_MS)

    async def _tail(self) -> None:
        while True:
            try:
                await self._close_revoked()
                change = await self._stream.try_next()
                if change is None:
                    if self.events.full_name != self._watching:
                        await self._switched()
                    elif not self.connections and await self._close_if_idle():
                        return
                    continue
                page = change.get("fullDocument")
                for event in audit.events_of([page] if page else []):
                    if event["version"] is not None:
                        self.received += 1
                        STREAM_UPDATES.inc()
                        self._dispatch(Update.from_event(event))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream_tail_failed", error=repr(exc))
                await asyncio.sleep(RESTART_BACKOFF_S)  # the database is restarting: do not spin
                await self._reopen()

    async def _close_revoked(self) -> None:
        """Close the streams of keys revoked since they opened (the tail loop comes by every IDLE_POLL_MS)."""
        now = asyncio.get_running_loop().time()
        if self.revoked is None or not self.connections or now < self._next_key_check:
            return
        self._next_key_check = now + KEY_CHECK_S
        gone = await self.revoked({conn.principal.key_id for conn in self.connections})
        for conn in [c for c in self.connections if c.principal.key_id in gone]:
            conn.drop(CLOSE_UNAUTHORIZED, "key_revoked", "this API key was revoked; ask an admin for a valid one")

    async def _switched(self) -> None:
        """A rebuild made another read model active: tail its audit trail; clients resume there."""
        log.info("stream_model_switched", model=self.events.full_name)
        await self._stream.close()
        self._stream = await self._watch(None)
        for conn in list(self.connections):
            conn.drop(CLOSE_RESTART, "stream_restarted", "the read model was switched; reconnect with `since`")

    async def _reopen(self) -> None:
        token = self._stream.resume_token if self._stream is not None else None
        try:
            self._stream = await self._watch(token)
        except Exception as exc:
            # The position is gone: updates may have been missed, so every client must resume from its last version.
            log.warning("stream_resume_failed", error=repr(exc))
            self._stream = await self._watch(None)
            for conn in list(self.connections):
                conn.drop(CLOSE_RESTART, "stream_restarted", "the update feed restarted; reconnect with `since`")

    def _dispatch(self, update: Update) -> None:
        for conn in self._by_tenant.get(update.tenant, ()):
            conn.offer(update)
        for conn in self._by_job.get(update.job_id, ()):
            if not conn.all and conn.tenant == update.tenant:
                conn.offer(update)

    # -- connections ------------------------------------------------------------------------------

    def open(self, principal: Principal) -> Connection:
        """A new connection for `principal`; TooManyStreams when its key has `max_per_key` open here."""
        if self._per_key.get(principal.key_id, 0) >= self.max_per_key:
            raise TooManyStreams(
                f"this API key already has {self.max_per_key} job streams open on this gateway; "
                "close one, or follow several jobs on one stream"
            )
        conn = Connection(self, principal, self.queue_size)
        self._per_key[principal.key_id] = self._per_key.get(principal.key_id, 0) + 1
        self.connections.add(conn)
        STREAM_CONNECTIONS.set(len(self.connections))
        return conn

    def close(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        STREAM_CONNECTIONS.set(len(self.connections))
        if not self.connections:
            self._idle_since = asyncio.get_running_loop().time()
        left = self._per_key.get(conn.principal.key_id, 1) - 1
        if left:
            self._per_key[conn.principal.key_id] = left
        else:
            self._per_key.pop(conn.principal.key_id, None)
        self.unsubscribe(conn, list(conn.jobs), all_=True)
        conn.cancel_tasks()

    async def subscribe(
        self, conn: Connection, jobs: Iterable[str] = (), *, all_: bool = False, since: dict[str, int] | None = None
    ) -> list[str]:
        """Follow `jobs` (and with `all_`, every job of the tenant); returns the ids that are not the tenant's jobs.

        Each job listed in `since` gets every version after the one given; each
        other job its current version; `all_` the current version of the
        tenant's active jobs. Then live updates.
        """
        await self._follow()  # before anything is read: what changes after the read comes live
        since = dict(since or {})
        wanted = (set(jobs) | set(since)) - conn.jobs
        if len(conn.jobs) + len(wanted) > MAX_JOBS_PER_CONNECTION:
            raise BadSubscription(
                f"a stream follows at most {MAX_JOBS_PER_CONNECTION} jobs; subscribe with `all` instead"
            )
        # Register first: from here on, live updates of these jobs are held, not lost.
        for job_id in wanted:
            conn.hold(job_id)
            conn.jobs.add(job_id)
            self._by_job.setdefault(job_id, set()).add(conn)
        newly_all = all_ and not conn.all
        if newly_all:
            conn.all = True
            conn.hold_all()
            self._by_tenant.setdefault(conn.tenant, set()).add(conn)
        try:
            # By `_id` alone (the primary key), the tenant checked here: `jobs` has no index on tenant and `_id`.
            docs = {
                d["_id"]: d
                async for d in by_ids(self.jobs_collection, list(wanted), _JOB_FIELDS)
                if d["tenant"] == conn.tenant
            }
            unknown = sorted(wanted - set(docs))
            self.unsubscribe(conn, unknown)
            current = [d for j, d in docs.items() if j not in since]
            if newly_all:
                active = [
                    d
                    async for d in active_jobs(self.jobs_collection, conn.tenant, _JOB_FIELDS)
                    if d["_id"] not in conn.jobs
                ]
                current += sorted(active, key=lambda d: d["_id"], reverse=True)[:SNAPSHOT_LIMIT]
            snapshot = await self._current(current)
            for job_id in docs:
                if job_id in since:
                    conn.release(job_id, await self.backlog(job_id, since[job_id]), resumed_from=since[job_id])
                else:
                    conn.release(job_id, [snapshot.pop(job_id)])
            if newly_all:
                conn.release_all(snapshot.values())
        except BaseException:
            self.unsubscribe(conn, list(wanted), all_=newly_all)
            raise
        return unknown

    def unsubscribe(self, conn: Connection, jobs: Iterable[str], *, all_: bool = False) -> None:
        for job_id in jobs:
            conn.jobs.discard(job_id)
            conn.forget(job_id)
            followers = self._by_job.get(job_id)
            if followers is not None:
                followers.discard(conn)
                if not followers:
                    del self._by_job[job_id]
        if all_ and conn.all:
            conn.all = False
            conn.stop_all()
            followers = self._by_tenant.get(conn.tenant)
            if followers is not None:
                followers.discard(conn)
                if not followers:
                    del self._by_tenant[conn.tenant]

    async def _current(self, jobs: list[dict[str, Any]]) -> dict[str, Update]:
        """The current version of each job document, with the event that made it when it is recorded yet."""
        if not jobs:
            return {}
        wanted = {(d["_id"], d["version"]) for d in jobs}
        # One `$in` alone: with a second one the embedded database scans every event (see `active_jobs`).
        pages = [p async for p in self.events.find({"job_id": {"$in": [j for j, _ in wanted]}}, _PAGE_FIELDS)]
        made: dict[tuple[str, int], dict[str, Any]] = {}
        # An event recorded before its job existed has no version (and made none): it cannot be wanted.
        for e in sorted((e for e in audit.events_of(pages) if e["version"] is not None), key=_version_order):
            if (e["job_id"], e["version"]) in wanted:
                made.setdefault((e["job_id"], e["version"]), e)
        return {d["_id"]: Update.from_job(d, made.get((d["_id"], d["version"]))) for d in jobs}

    async def backlog(self, job_id: str, after: int) -> list[Update]:
        """Every version of the job after `after`, from the audit trail, one update per version."""
        events = await audit.job_events(self.events, job_id, _PAGE_FIELDS)
        updates: list[Update] = []
        for doc in sorted((e for e in events if e["version"] is not None and e["version"] > after), key=_version_order):
            if not updates or updates[-1].version != doc["version"]:
                updates.append(Update.from_event(doc))
        return updates[:BACKLOG_LIMIT]

    async def backfill(self, conn: Connection, job_id: str, after: int) -> None:
        """Fill a gap in a live sequence from the audit trail, then release what was held."""
        try:
            updates = await self.backlog(job_id, after)
        except Exception as exc:
            log.warning("stream_backfill_failed", job_id=job_id, error=repr(exc))
            updates = []
        if job_id in conn.jobs or conn.all:
            conn.release(job_id, updates)
        else:
            conn.forget(job_id)  # unsubscribed meanwhile
