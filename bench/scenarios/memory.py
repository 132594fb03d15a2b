"""Scenario 6: resident memory of each service process (and of the broker and database), and idle CPU."""

from __future__ import annotations

import asyncio
import time

from ..common import Bench, cpu_spent


def snapshot(bench: Bench) -> dict[str, float | None]:
    return bench.memory()


async def idle_cpu(bench: Bench, seconds: float = 10) -> dict[str, float]:
    """Percent of a core each process uses with nothing in flight: what polling the log and the database costs."""
    before, start = bench.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    after, elapsed = bench.cpu(), time.monotonic() - start
    return {name: round(100 * spent / elapsed, 1) for name, spent in cpu_spent(before, after).items()}
