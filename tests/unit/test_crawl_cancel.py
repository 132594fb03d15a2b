"""Cancelling crawls by job: the one running stops, a later one never starts, a worker stop is not a cancel."""

from __future__ import annotations

import asyncio

import pytest

from sitewright_contracts import events as ev
from sitewright_runtime.running import RunningWork, WorkCancelled


async def forever(started: asyncio.Event) -> str:
    started.set()
    await asyncio.Event().wait()
    return "never"


async def test_a_cancel_stops_the_running_crawl_of_that_job_only() -> None:
    crawls = RunningWork()
    a_started, b_started = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(crawls.run("job-a", forever(a_started)))
    b = asyncio.create_task(crawls.run("job-b", forever(b_started)))
    await a_started.wait()
    await b_started.wait()
    cancel = ev.JobCancelRequested(job_id="job-a")
    assert crawls.cancel(cancel) is True
    with pytest.raises(WorkCancelled) as caught:
        await asyncio.wait_for(a, 1)
    assert caught.value.cause is cancel
    assert not b.done() and "job-b" in crawls and "job-a" not in crawls
    b.cancel()


async def test_a_crawl_requested_after_its_cancel_never_starts() -> None:
    crawls = RunningWork()
    assert crawls.cancel(ev.JobCancelRequested(job_id="job-a")) is False  # nothing running yet
    ran = asyncio.Event()
    with pytest.raises(WorkCancelled):
        await crawls.run("job-a", forever(ran))
    assert not ran.is_set()


async def test_a_worker_stopping_is_not_a_cancel_of_the_job() -> None:
    crawls = RunningWork()
    started = asyncio.Event()
    outer = asyncio.create_task(crawls.run("job-a", forever(started)))
    await started.wait()
    outer.cancel()  # what a stopping consumer does to its handlers
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert "job-a" not in crawls and crawls.cancelled("job-a") is None
