"""Marks accepted jobs as published, many at once.

`POST /api/jobs` writes the job (unpublished), publishes its request, then the
job must be marked published so the scheduler does not publish it again. That
mark used to be one awaited `update_one` per request: a third round trip on
the write path. Now the request hands the id over and answers; one
`update_many` marks every id handed over while the previous write was in
flight (a group commit). A mark lost in a crash only means the scheduler
republishes that request after its grace period, with the same event id, which
every consumer drops as a duplicate.

The projector marks a job too, in the write it makes anyway when it sees the
request on the log; so marks wait a moment (`DELAY_S`) and only touch jobs
still unmarked, and usually find the projector was first and write nothing.
"""

from __future__ import annotations

import asyncio

from sitewright_runtime.logs import get_logger

from .store import Store

log = get_logger(__name__)
PUBLISHED = {"$set": {"published": True}, "$unset": {"outbox": ""}}
# Well under the scheduler's outbox grace (5 s by default), well over the projector's usual lag.
DELAY_S = 1.0


class PublishedMarks:
    def __init__(self, store: Store):
        self.store = store  # `store.jobs` moves to a rebuilt read model when the gateway switches over
        self._ids: list[str] = []
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()

    def add(self, job_id: str) -> None:
        self._ids.append(job_id)
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    async def run(self) -> None:
        """Write marks until `stop()`, then write the last ones."""
        while True:
            await self._wake.wait()
            try:  # gather the marks of a moment (the projector may write them first); at once when stopping
                await asyncio.wait_for(self._stopped.wait(), DELAY_S)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            if self._stopped.is_set():
                return

    async def flush(self) -> None:
        ids, self._ids = self._ids, []
        if not ids:
            return
        try:
            await self.store.jobs.update_many({"_id": {"$in": ids}, "published": False}, PUBLISHED)
        except Exception as exc:  # the scheduler's outbox sweep republishes these; consumers drop the duplicates
            log.warning("published_marks_failed", jobs=len(ids), error=repr(exc))
