"""The generator's adaptive limit on provider calls: growth, cuts, pauses, fairness; and the rate-limit headers."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sitewright_generator.limiter import ProviderLimit
from sitewright_generator.llm_http import exhausted_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_slow_start_doubles_a_full_limit_each_round_up_to_the_ceiling():
    limit = ProviderLimit(ceiling=20, initial=4)
    for expected in (8, 16, 20):
        starts = [await limit.acquire("t") for _ in range(int(limit.limit))]
        assert limit.in_flight == len(starts)
        for started in starts:
            limit.release(started, "ok")
        assert int(limit.limit) == expected


async def test_a_limit_that_is_not_reached_does_not_grow():
    limit = ProviderLimit(ceiling=100, initial=10)
    for _ in range(50):
        limit.release(await limit.acquire("t"), "ok")  # one call at a time: nothing shows more would pass
    assert limit.limit == 10


async def test_a_throttle_halves_once_per_round_then_growth_is_additive():
    clock = Clock()
    limit = ProviderLimit(ceiling=64, initial=32, clock=clock)
    starts = [await limit.acquire("t") for _ in range(32)]
    clock.now += 1
    for started in starts[:10]:  # ten 429s of one burst: one cut, not ten
        limit.release(started, "throttled", wait_s=0)
    assert limit.limit == 16 and limit.threshold == 16 and limit.throttles == 10
    for started in starts[10:]:
        limit.release(started, "ok")  # they ran in the round that was cut: no growth
    assert limit.limit == 16
    clock.now += 1
    # Past the threshold a full round adds about one slot, not a doubling.
    starts = [await limit.acquire("t") for _ in range(16)]
    for started in starts:
        limit.release(started, "ok")
    assert 16.9 < limit.limit < 17.1
    # A throttle of a call that started after the cut cuts again.
    clock.now += 1
    limit.release(await limit.acquire("t"), "throttled", wait_s=0)
    assert 8.4 < limit.limit < 8.6


async def test_retry_after_pauses_new_calls_and_the_queue_wakes_when_it_ends():
    limit = ProviderLimit(ceiling=8, initial=8)
    started = await limit.acquire("t")
    limit.release(started, "throttled", wait_s=0.3)
    t0 = time.monotonic()
    await asyncio.wait_for(limit.acquire("t"), 5)  # nothing in flight: only the timer can wake it
    assert time.monotonic() - t0 >= 0.28
    assert limit.in_flight == 1


async def test_a_freed_slot_goes_to_the_next_tenant_in_turn():
    limit = ProviderLimit(ceiling=1, initial=1)
    first = await limit.acquire("big")
    order: list[str] = []

    async def call(tenant: str) -> None:
        started = await limit.acquire(tenant)
        order.append(tenant)
        limit.release(started, "ok")

    tasks = [asyncio.create_task(call("big")) for _ in range(5)] + [asyncio.create_task(call("small"))]
    await asyncio.sleep(0)
    assert limit.waiting == 6
    limit.release(first, "ok")
    await asyncio.gather(*tasks)
    assert order[:2] == ["big", "small"], "the small tenant's one call waits a turn, not behind the five"


async def test_a_cancelled_waiter_gives_up_its_place_and_its_slot():
    limit = ProviderLimit(ceiling=1, initial=1)
    held = await limit.acquire("a")
    waiter = asyncio.create_task(limit.acquire("b"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limit.waiting == 0
    limit.release(held, "ok")
    assert limit.in_flight == 0
    assert limit.in_flight == 0 and await asyncio.wait_for(limit.acquire("c"), 1)


def test_rate_limit_headers_say_how_long_no_request_is_left():
    openai = httpx.Headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"})
    assert exhausted_for(openai) == 360
    tokens = httpx.Headers({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "250ms"})
    assert exhausted_for(tokens) == pytest.approx(0.25)
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30))
    anthropic = httpx.Headers(
        {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}
    )
    assert 28 <= (exhausted_for(anthropic) or 0) <= 30
    assert exhausted_for(httpx.Headers({"x-ratelimit-remaining-requests": "12"})) is None
    # Left at zero with a reset nobody can read: wait a second, as for a 429 without Retry-After.
    assert exhausted_for(httpx.Headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "?"})) == 1
