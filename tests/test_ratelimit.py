"""The HTTP API's token buckets, on a clock the tests move by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ratelimit import RateLimiter, Refusal, TokenBucket


def test_a_full_bucket_lets_a_burst_through_then_refuses() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0)
    assert [bucket.take(0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(0) == pytest.approx(0.1)


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=2, burst=2, now=0)
    bucket.take(0)
    bucket.take(0)
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token back: wait for the rest
    assert bucket.take(0.5) == 0
    assert [bucket.take(100) for _ in range(3)][-1] > 0  # an idle hour still holds 2


def test_a_clock_that_goes_back_gives_no_tokens() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10)
    bucket.take(10)
    assert bucket.take(5) > 0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_a_bucket_needs_a_rate_and_a_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate above 0"):
        TokenBucket(rate, burst, now=0)


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.check("10.0.0.1", 0) is None
    assert limiter.check("10.0.0.2", 0) is None
    assert limiter.check("10.0.0.1", 0) == Refusal(retry_after=1, first=True)


def test_only_the_first_refusal_of_a_spell_says_it_is_first() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    limiter.check("a", 0)
    firsts = [refusal.first for refusal in (limiter.check("a", 0.1), limiter.check("a", 0.2))]
    assert firsts == [True, False]
    assert limiter.check("a", 1.5) is None  # allowed again: the spell is over
    refusal = limiter.check("a", 1.5)
    assert refusal is not None
    assert refusal.first


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    limiter = RateLimiter(rate=0.25, burst=1)
    limiter.check("a", 0)
    assert limiter.check("a", 1) == Refusal(retry_after=3, first=True)


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert not limiter.enabled
    assert all(limiter.check("a", 0) is None for _ in range(10_000))
    assert len(limiter) == 0


def test_memory_stays_bounded_and_the_least_recent_caller_goes_first() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_keys=2)
    limiter.check("a", 0)
    limiter.check("b", 0)
    limiter.check("a", 0)  # refused, and now the most recent
    limiter.check("c", 0)  # pushes out "b"
    assert len(limiter) == 2
    assert limiter.check("a", 0) is not None
    assert limiter.check("b", 0) is None  # forgotten: a full bucket again


@given(
    rate=st.floats(0.5, 1000),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_no_caller_ever_gets_more_than_the_burst_plus_the_rate(
    rate: float, burst: int, gaps: list[float]
) -> None:
    limiter = RateLimiter(rate=rate, burst=burst)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        refusal = limiter.check("one", now)
        allowed += refusal is None
        if refusal is not None:
            assert refusal.retry_after >= 1
    assert allowed <= burst + rate * now + 1e-6
