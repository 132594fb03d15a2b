"""How many calls run at once against one LLM provider: found by the provider's answers, fair across tenants.

The limit is not a constant. It grows while calls succeed with every slot in use and halves when the
provider throttles (HTTP 429, 529 "overloaded"), as TCP's congestion window does:

- slow start: each success of a call during which the limit was reached adds one slot, so a full round
  of calls doubles it, until the first throttle; after that, a round adds one slot (additive increase).
  A limit never reached has not shown it could be higher, and does not grow;
- a throttle halves the limit once per round: throttles of calls that started before the last cut come
  from the same burst and do not cut again;
- `Retry-After` (on a 429) and a rate-limit header saying no request is left pause every new call until
  that time; calls already streaming go on.

Several generator instances need no shared counter: each one reacts to the same provider's throttling,
so together they settle where the provider lets them, as TCP flows share a link.

Calls waiting for a slot queue per tenant, and a freed slot goes to the next tenant in turn: a tenant
with 5,000 queued jobs delays another tenant's one job by a slot's turn, not by 5,000 calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Literal

Outcome = Literal["ok", "throttled", "failed"]


class ProviderLimit:
    """Slots for one provider's calls: `async with limit.slot(tenant) as ticket`, then `ticket.done(outcome)`."""

    def __init__(
        self, *, ceiling: int, initial: int, floor: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ceiling = ceiling
        self.floor = max(1, min(floor, ceiling))
        self.limit = float(max(self.floor, min(initial, ceiling)))
        self.threshold = float(ceiling)  # slow start below it; set at the first throttle
        self.in_flight = 0
        self.paused_until = 0.0
        self.throttles = 0
        self._clock = clock
        self._last_cut = float("-inf")
        self._reached_at = float("-inf")  # when the calls in flight last filled the limit
        self._queues: OrderedDict[str, deque[asyncio.Future[float]]] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def slot(self, tenant: str) -> Ticket:
        return Ticket(self, tenant)

    def pause(self, seconds: float) -> None:
        """No new call starts for `seconds` (the provider asked to wait); calls in flight go on."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)

    async def acquire(self, tenant: str) -> float:
        """Wait for a slot, in the tenant's turn; the time the call starts (for `release`)."""
        if not self._queues and self._room():
            return self._take()
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(tenant, deque()).append(waiter)
        self._grant()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # granted as the waiter was cancelled: hand the slot on
                self._grant()
            else:
                self._forget(tenant, waiter)
            raise

    def release(self, started_at: float, outcome: Outcome, wait_s: float | None = None) -> None:
        """A call that started at `started_at` ended: adjust the limit and hand the slot on."""
        self.in_flight -= 1
        if outcome == "ok" and self._last_cut < started_at <= self._reached_at:
            # The limit was full while this call ran, and it started after the last cut.
            step = 1.0 if self.limit < self.threshold else 1.0 / self.limit
            self.limit = min(float(self.ceiling), self.limit + step)
        elif outcome == "throttled":
            self.throttles += 1
            if started_at >= self._last_cut:
                self.limit = self.threshold = max(float(self.floor), self.limit / 2)
                self._last_cut = self._clock()
            self.pause(wait_s if wait_s is not None else 1.0)
        self._grant()

    def _take(self) -> float:
        """One more call in flight; the time it starts."""
        now = self._clock()
        self.in_flight += 1
        if self.in_flight >= int(self.limit):
            self._reached_at = now
        return now

    def _room(self) -> bool:
        return self.in_flight < int(self.limit) and self._clock() >= self.paused_until

    def _grant(self) -> None:
        while self._queues and self._room():
            tenant, queue = next(iter(self._queues.items()))
            waiter = queue.popleft()
            if queue:
                self._queues.move_to_end(tenant)  # round robin: this tenant goes to the back
            else:
                del self._queues[tenant]
            if not waiter.done():
                waiter.set_result(self._take())
        if self._queues and self._timer is None and self.in_flight < int(self.limit):
            # Paused with room: wake the queue when the pause ends, not at the next call's end.
            delay = max(self.paused_until - self._clock(), 0.001)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._grant()

    def _forget(self, tenant: str, waiter: asyncio.Future[float]) -> None:
        queue = self._queues.get(tenant)
        if queue is None:
            return
        try:
            queue.remove(waiter)
        except ValueError:
            return
        if not queue:
            del self._queues[tenant]


class Ticket:
    """One call's slot; leaving the block without `done()` counts as a failure (it neither grows nor cuts)."""

    def __init__(self, limit: ProviderLimit, tenant: str) -> None:
        self._limit = limit
        self._tenant = tenant
        self._started_at = 0.0
        self._outcome: Outcome = "failed"
        self._wait_s: float | None = None

    def done(self, outcome: Outcome, wait_s: float | None = None) -> None:
        self._outcome, self._wait_s = outcome, wait_s

    async def __aenter__(self) -> Ticket:
        self._started_at = await self._limit.acquire(self._tenant)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._limit.release(self._started_at, self._outcome, self._wait_s)
