"""Admission control: new jobs get 429 with Retry-After while too much accepted work is unfinished.

Counted per tenant first, then over all tenants. One tenant's flood cannot take the whole pipeline,
and the pipeline does not accept more than it can finish in reasonable time: past that, the backlog
grows in the broker and every job's latency with it, while the API stops answering in time. The
counts are the read model's active jobs, read at most once per `refresh_s` by each gateway (in the
background, so no POST waits for it), plus what this gateway accepted since.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from sitewright_runtime.logs import get_logger

from ..readmodel.store import Store, active_jobs

log = get_logger(__name__)


@dataclass
class Refusal:
    """Why jobs were not admitted, and when to try again."""

    message: str
    retry_after_s: int


@dataclass
class Admission:
    store: Store
    per_tenant: int  # active jobs one tenant may have (0: no limit)
    total: int  # active jobs over all tenants (0: no limit)
    retry_after_s: int = 5
    refresh_s: float = 1.0
    _active: Counter[str] = field(default_factory=Counter)
    _at: float = float("-inf")
    _refreshing: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.per_tenant or self.total)

    async def admit(self, tenant: str, wanted: int = 1) -> tuple[int, Refusal | None]:
        """How many of `wanted` new jobs of `tenant` may be accepted now, and why not the rest."""
        if not self.enabled:
            return wanted, None
        await self._fresh()
        rooms = []  # (room left, who has how many, their limit)
        if self.per_tenant:
            active = self._active[tenant]
            rooms.append((self.per_tenant - active, f"this tenant has {active}", self.per_tenant))
        if self.total:
            active = self._active.total()
            rooms.append((self.total - active, f"Sitewright has {active}", self.total))
        room, who, limit = min(rooms)
        granted = max(0, min(wanted, room))
        self._active[tenant] += granted
        if granted == wanted:
            return granted, None
        message = (
            f"too much unfinished work: {who} jobs accepted and not yet finished, the limit is {limit}; "
            f"retry after {self.retry_after_s} s"
        )
        return granted, Refusal(message, self.retry_after_s)

    async def _fresh(self) -> None:
        stale = time.monotonic() - self._at >= self.refresh_s
        if self._at == float("-inf"):
            await self._count()  # the first decision waits for a count; later ones use the last one
        elif stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._count())

    async def _count(self) -> None:
        try:
            active = Counter([d["tenant"] async for d in active_jobs(self.store.jobs, projection={"tenant": 1})])
        except Exception as exc:  # the database is away: keep the last counts, admit as before
            log.warning("admission_count_failed", error=repr(exc))
            return
        self._active, self._at = active, time.monotonic()
