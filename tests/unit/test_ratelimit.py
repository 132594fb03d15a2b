"""Token buckets: per-key job creation limits and per-connection stream limits (no I/O)."""

from __future__ import annotations

import pytest

from sitewright_gateway.web import ratelimit
from sitewright_gateway.web.ratelimit import KeyedLimiter, RateLimited, StreamLimiter, TokenBucket


def test_a_bucket_allows_its_burst_then_refills_at_its_rate():
    bucket = TokenBucket(rate=2, burst=3, stamp=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one token takes 1/rate seconds
    assert bucket.take(100.25) == pytest.approx(0.25), "a refused take must not spend a token"
    assert bucket.take(100.5) == 0.0
    assert bucket.take(110.0) == 0.0 and bucket.tokens == pytest.approx(2.0), "refill stops at the burst"


def test_each_key_has_its_own_bucket_and_the_refusal_says_when_to_retry():
    limiter = KeyedLimiter("jobs created with this API key", rate=0.5, burst=2)
    limiter.check("a", now=0.0)
    limiter.check("a", now=0.0)
    with pytest.raises(RateLimited) as refused:
        limiter.check("a", now=0.1)
    assert refused.value.retry_after == pytest.approx(1.9)
    assert refused.value.retry_after_header == "2", "Retry-After is whole seconds, rounded up"
    assert "0.5 per second with bursts of 2" in refused.value.message
    limiter.check("b", now=0.1)  # another key is not affected


def test_retry_after_is_never_zero():
    limiter = KeyedLimiter("x", rate=1000, burst=1)
    limiter.check("k", now=0.0)
    with pytest.raises(RateLimited) as refused:
        limiter.check("k", now=0.0)
    assert refused.value.retry_after_header == "1"


def test_a_zero_rate_turns_the_limit_off():
    limiter = KeyedLimiter("x", rate=0, burst=1)
    for _ in range(100):
        limiter.check("k", now=0.0)
    stream = StreamLimiter(rate=0, burst=1)
    for _ in range(100):
        stream.check(now=0.0)


def test_idle_buckets_are_forgotten_when_there_are_too_many(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 10)
    limiter = KeyedLimiter("x", rate=1, burst=1)
    for i in range(10):
        limiter.check(f"idle{i}", now=0.0)
    limiter.check("new", now=5.0)  # by now every earlier bucket has refilled: all are dropped
    assert set(limiter._buckets) == {"new"}
    with pytest.raises(RateLimited):  # the new key's bucket is kept and enforced
        limiter.check("new", now=5.0)


def test_a_stream_connection_is_limited_on_its_own():
    first, second = StreamLimiter(rate=1, burst=2), StreamLimiter(rate=1, burst=2)
    first.check(now=0.0)
    first.check(now=0.0)
    with pytest.raises(RateLimited) as refused:
        first.check(now=0.0)
    assert "stream messages on this connection" in refused.value.message
    second.check(now=0.0)


def test_stream_limiter_reads_the_gateway_settings():
    class Settings:
        rate_stream_msgs_per_s = 3.0
        rate_stream_burst = 7.0

    limiter = StreamLimiter.from_settings(Settings())
    assert (limiter.rate, limiter.burst) == (3.0, 7.0)
