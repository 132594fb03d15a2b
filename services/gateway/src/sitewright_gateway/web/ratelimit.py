"""Rate limits: token buckets per API key (job creation) and per stream connection (messages).

Buckets live in the gateway process. With N gateway instances behind a load
balancer a key can create up to about N times `SITEWRIGHT_RATE_JOBS_PER_S`
(each instance refills its own bucket); set the rate per instance with that
in mind. A shared store (a MongoDB counter) would make the limit exact but
cost a round trip on every POST, whose p99 target is 15 ms; the bucket costs
a dict lookup and some arithmetic. A restart forgets the buckets (they start
full), which errs towards letting clients through.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from .deps import Caller

if TYPE_CHECKING:
    from ..config import GatewaySettings

# Buckets kept per process before idle (full) ones are forgotten; bounds memory under key churn.
MAX_BUCKETS = 50_000


@dataclass(slots=True)
class TokenBucket:
    """`burst` tokens at most, refilled at `rate` per second; one action takes one token."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float | None = None) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is available (nothing taken)."""
        now = time.monotonic() if now is None else now
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take_up_to(self, wanted: int, now: float) -> tuple[int, float]:
        """Take up to `wanted` whole tokens: how many were taken, and the seconds until the next one if short."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted, 0.0 if granted == wanted else (1.0 - (self.tokens % 1.0)) / self.rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class RateLimited(Exception):
    """Over the limit; `retry_after` seconds until the next action is allowed."""

    def __init__(self, what: str, retry_after: float, rate: float, burst: float):
        self.retry_after = retry_after
        self.retry_after_header = str(max(1, math.ceil(retry_after)))  # Retry-After takes whole seconds
        self.message = (
            f"too many {what}: the limit is {rate:g} per second with bursts of {burst:g}; "
            f"retry after {self.retry_after_header} s"
        )
        super().__init__(self.message)


class KeyedLimiter:
    """One token bucket per key (an API key's id), created on first use."""

    def __init__(self, what: str, rate: float, burst: float):
        self.what, self.rate, self.burst = what, rate, burst
        self._buckets: dict[str, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str, now: float | None = None) -> None:
        """Take a token for `key` or raise RateLimited."""
        if not self.enabled:
            return
        now = time.monotonic() if now is None else now
        wait = self._bucket(key, now).take(now)
        if wait:
            raise RateLimited(self.what, wait, self.rate, self.burst)

    def grant(self, key: str, wanted: int, now: float | None = None) -> tuple[int, RateLimited | None]:
        """Take up to `wanted` tokens for `key`: how many, and the limit that refused the rest."""
        if not self.enabled:
            return wanted, None
        now = time.monotonic() if now is None else now
        granted, wait = self._bucket(key, now).take_up_to(wanted, now)
        return granted, RateLimited(self.what, wait, self.rate, self.burst) if granted < wanted else None

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, stamp=now)
        return bucket

    def _forget_idle(self, now: float) -> None:
        # A full bucket is the same as no bucket, so dropping those changes no decision.
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:  # everyone is busy: forget the oldest half rather than grow
            for key in sorted(self._buckets, key=lambda k: self._buckets[k].stamp)[: MAX_BUCKETS // 2]:
                del self._buckets[key]


class StreamLimiter:
    """Messages one stream connection may send or receive; the streams code makes one per connection.

    limiter = StreamLimiter.from_settings(settings)
    try:
        limiter.check()
    except RateLimited as exc:
        ...  # WS: send an error with exc.message and close with 1008; SSE: end the stream
    """

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self._bucket = TokenBucket(rate, burst) if rate > 0 else None

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> StreamLimiter:
        return cls(settings.rate_stream_msgs_per_s, settings.rate_stream_burst)

    def check(self, now: float | None = None) -> None:
        if self._bucket is None:
            return
        wait = self._bucket.take(now)
        if wait:
            raise RateLimited("stream messages on this connection", wait, self.rate, self.burst)


def too_many_requests(exc: RateLimited) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, exc.message, headers={"Retry-After": exc.retry_after_header}
    )


def job_creation_limiter(request: Request) -> KeyedLimiter:
    """The app's limiter for job creation, made on first use from its settings."""
    limiter = getattr(request.app.state, "job_creation_limiter", None)
    if limiter is None:
        settings = request.app.state.gateway.settings
        limiter = request.app.state.job_creation_limiter = KeyedLimiter(
            "jobs created with this API key", settings.rate_jobs_per_s, settings.rate_jobs_burst
        )
    return limiter


async def limit_job_creation(request: Request, caller: Caller) -> None:
    """Dependency of POST /api/jobs: one token per request from the caller's key's bucket."""
    try:
        job_creation_limiter(request).check(caller.key_id)
    except RateLimited as exc:
        raise too_many_requests(exc) from None


JobCreationLimit = Annotated[None, Depends(limit_job_creation)]

# What the routes declare in OpenAPI for a 429.
RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "description": "Too many requests with this API key; wait the `Retry-After` seconds.",
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    }
}
