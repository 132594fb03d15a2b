"""One client's job stream: what it follows, the last version it got of each job, and its bounded outbox."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from sitewright_runtime.logs import get_logger

from ..web.auth import Principal
from .messages import CLOSE_TOO_SLOW, Update

if TYPE_CHECKING:
    from .hub import Hub

log = get_logger(__name__)
STREAM_DROPPED = Counter("sitewright_stream_dropped_total", "Job stream connections the server closed.", ["reason"])


class Connection:
    """One client's stream: what it follows, the last version it got of each job, and its bounded outbox."""

    def __init__(self, hub: Hub, principal: Principal, limit: int):
        self.hub = hub
        self.principal = principal
        self.tenant = principal.tenant
        self.limit = limit
        self.all = False
        self.jobs: set[str] = set()
        self.closed: tuple[int, str, str] | None = None  # (close code, error code, message)
        self.done = asyncio.Event()
        self._last: dict[str, int] = {}
        self._held: dict[str, list[Update]] = {}  # jobs whose backlog is being read: live updates wait here
        self._held_all: list[Update] | None = None
        self._out: deque[Update | dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    # -- called by the hub ------------------------------------------------------------------------

    def offer(self, update: Update) -> None:
        """A live update from the change stream (never blocks)."""
        if self.closed is not None:
            return
        held = self._held.get(update.job_id)
        if held is not None:
            held.append(update)
        elif self._held_all is not None:
            self._held_all.append(update)
        else:
            self._deliver(update, live=True)

    def hold(self, job_id: str) -> None:
        self._held.setdefault(job_id, [])

    def release(self, job_id: str, backlog: Iterable[Update], *, resumed_from: int | None = None) -> None:
        """Send `backlog` (versions in order), then the live updates held meanwhile."""
        held = self._held.pop(job_id, [])
        if resumed_from is not None:
            self._last[job_id] = max(self._last.get(job_id, 0), resumed_from)
        for update in backlog:
            self._deliver(update)
        for update in sorted(held, key=lambda u: u.version):
            self._deliver(update, live=True)

    def hold_all(self) -> None:
        if self._held_all is None:
            self._held_all = []

    def release_all(self, snapshot: Iterable[Update]) -> None:
        held, self._held_all = self._held_all or [], None
        for update in snapshot:
            self._deliver(update)
        for update in held:
            self.offer(update)

    def stop_all(self) -> None:
        self._held_all = None

    def forget(self, job_id: str) -> None:
        self._held.pop(job_id, None)
        self._last.pop(job_id, None)

    def _deliver(self, update: Update, *, live: bool = False) -> None:
        last = self._last.get(update.job_id)
        if last is not None and update.version <= last:
            return  # sent already (backlog and live tail overlap by design)
        if live and last is not None and update.version > last + 1:
            # A version is missing: read it from the audit trail before going on.
            self._held[update.job_id] = [update]
            self._spawn(self.hub.backfill(self, update.job_id, last))
            return
        self._last[update.job_id] = update.version
        self.put(update)

    # -- the outbox -------------------------------------------------------------------------------

    def put(self, item: Update | dict[str, Any]) -> None:
        """Queue a message; a client this far behind is dropped, so it cannot hold memory or the hub."""
        if self.closed is not None:
            return
        if len(self._out) >= self.limit:
            self.drop(
                CLOSE_TOO_SLOW,
                "too_slow",
                f"the client fell more than {self.limit} messages behind; reconnect with `since`",
            )
            return
        self._out.append(item)
        self._wake.set()

    async def take(self, timeout: float) -> list[Update | dict[str, Any]]:
        """Everything queued, waiting up to `timeout` for something; [] when idle that long (time for a heartbeat)."""
        if not self._out and self.closed is None:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return []
        items = list(self._out)
        self._out.clear()
        return items

    def drop(self, close_code: int, code: str, message: str) -> None:
        if self.closed is None:
            self.closed = (close_code, code, message)
            STREAM_DROPPED.labels(code).inc()
            log.info("stream_dropped", key_id=self.principal.key_id, reason=code)
        self.done.set()
        self._wake.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
