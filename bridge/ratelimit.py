"""Rate limits for the HTTP API: one token bucket per caller, pure and driven by a clock.

A bucket holds up to ``burst`` tokens and gains ``rate`` of them per second;
each request takes one. A caller that finds its bucket empty is refused and
told how long until the next token. Nothing here does I/O or reads the time
itself: the caller passes ``now``, so the tests need no sleeping.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["RateLimiter", "Refusal", "TokenBucket"]


class TokenBucket:
    """Up to ``burst`` requests at once, then ``rate`` per second."""

    __slots__ = ("burst", "limited", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a rate above 0 and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now
        #: Whether the last request was refused: a refusal after an allowed
        #: request starts a new spell of refusals.
        self.limited = False

    def take(self, now: float) -> float:
        """Take a token: 0 if there was one, else the seconds until there is."""
        elapsed = max(now - self.updated, 0.0)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.limited = False
            return 0.0
        self.limited = True
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request over its limit."""

    #: Whole seconds to wait before the next request may pass (``Retry-After``).
    retry_after: int
    #: Whether this caller was allowed just before: the first refusal of a spell.
    first: bool


class RateLimiter:
    """A token bucket per key (an address, or the API key): ``rate`` per second, ``burst`` at once.

    A ``rate`` of 0 turns the limit off. At most ``max_keys`` buckets are
    kept; the least recently used goes first, and a caller whose bucket went
    starts again with a full one, so memory stays bounded whoever calls.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000) -> None:
        if rate > 0 and burst < 1:
            raise ValueError("a rate limit needs a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str, now: float) -> Refusal | None:
        """Count one request from ``key`` at ``now``: ``None`` if it may pass."""
        if not self.enabled:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        was_limited = bucket.limited
        wait = bucket.take(now)
        if wait == 0:
            return None
        return Refusal(retry_after=max(1, math.ceil(wait)), first=not was_limited)

    def __len__(self) -> int:
        return len(self._buckets)
