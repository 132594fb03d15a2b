"""Which jobs' work (a crawl, a generation) runs in this process, so a cancel can stop the right one at once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any, TypeVar

from sitewright_contracts import events as ev

T = TypeVar("T")

# Cancels remembered for jobs that have no work running here: a redelivered or queued
# request for such a job must not start any. Bounded; old entries are long settled.
REMEMBERED_CANCELS = 10_000


class WorkCancelled(Exception):
    """The job's work was stopped by `cause`, a job.cancel_requested event."""

    def __init__(self, cause: ev.JobCancelRequested):
        super().__init__(cause.data.reason)
        self.cause = cause


class RunningWork:
    """Work tasks by job id, and the cancels received for each job."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._cancels: OrderedDict[str, ev.JobCancelRequested] = OrderedDict()

    def cancel(self, request: ev.JobCancelRequested) -> bool:
        """Record the cancel and stop the job's work; True when some was running here."""
        self._cancels[request.job_id] = request
        self._cancels.move_to_end(request.job_id)
        while len(self._cancels) > REMEMBERED_CANCELS:
            self._cancels.popitem(last=False)
        task = self._tasks.get(request.job_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def cancelled(self, job_id: str) -> ev.JobCancelRequested | None:
        return self._cancels.get(job_id)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._tasks

    async def run(self, job_id: str, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` for `job_id`; WorkCancelled when a cancel for the job stops it (or came before)."""
        if (cause := self._cancels.get(job_id)) is not None:
            work.close()
            raise WorkCancelled(cause)
        task = asyncio.create_task(work)
        self._tasks[job_id] = task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Either this job was cancelled (its task is), or the worker is stopping
            # (the caller is): only the first is a cancellation of the job.
            if task.cancelled() and (cause := self._cancels.get(job_id)) is not None:
                raise WorkCancelled(cause) from None
            task.cancel()
            raise
        finally:
            if self._tasks.get(job_id) is task:
                del self._tasks[job_id]
