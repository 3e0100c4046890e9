"""Rate limiters: may this API key call this provider now, and if not, for how long must it wait?

One limiter per (provider, API key), of the kind ``SimulatorConfig.rate_limit`` names (:class:`~._config.RateLimit`
describes the kinds): :class:`TokenBucket`, :class:`FixedWindow` and :class:`SlidingWindow`. Each answers a request
at time ``now`` with ``None`` (it passes and is counted) or the true number of seconds until a request would pass;
:func:`retry_after` writes that wait as the ``Retry-After`` header. No I/O: time comes from the injected clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ._config import LimiterKind, RateLimit, RetryAfterStyle

__all__ = ["FixedWindow", "Limiter", "RateLimiters", "SlidingWindow", "TokenBucket", "retry_after"]

_EPSILON = 1e-9  # seconds: float rounding, not time. A request arriving exactly when told to is not turned away.


class Limiter(Protocol):
    kind: LimiterKind

    def take(self, now: float, limit: RateLimit) -> float | None:
        """``None`` if a request at ``now`` passes (and is counted), else the seconds until one would pass."""


class TokenBucket:
    """``limit.rate`` tokens per second into a bucket of ``limit.burst``, full at the first request."""

    kind: LimiterKind = "token_bucket"

    def __init__(self, now: float, limit: RateLimit) -> None:
        self.tokens = limit.burst
        self.updated = now

    def take(self, now: float, limit: RateLimit) -> float | None:
        tokens = min(limit.burst, self.tokens + (now - self.updated) * limit.rate)
        self.updated = now
        if tokens >= 1.0 - _EPSILON:
            self.tokens = max(0.0, tokens - 1.0)
            return None
        self.tokens = tokens
        return (1.0 - tokens) / limit.rate  # until the next token


class FixedWindow:
    """``limit.per_window`` requests in each window of ``limit.window`` seconds, windows at multiples of it."""

    kind: LimiterKind = "fixed_window"

    def __init__(self, now: float, limit: RateLimit) -> None:
        self.index = math.floor(now / limit.window + _EPSILON)
        self.count = 0

    def take(self, now: float, limit: RateLimit) -> float | None:
        index = math.floor(now / limit.window + _EPSILON)
        if index != self.index:
            self.index, self.count = index, 0
        if self.count < limit.per_window:
            self.count += 1
            return None
        return (index + 1) * limit.window - now  # until the next window


class SlidingWindow:
    """``limit.per_window`` accepted requests in any ``limit.window`` seconds, from a log of their times."""

    kind: LimiterKind = "sliding_window"

    def __init__(self, now: float, limit: RateLimit) -> None:
        self.accepted: deque[float] = deque()

    def take(self, now: float, limit: RateLimit) -> float | None:
        log = self.accepted
        while log and log[0] <= now - limit.window + _EPSILON:
            log.popleft()
        if len(log) < limit.per_window:
            log.append(now)
            return None
        # Until enough logged requests have left the window that one more fits (the oldest, unless the limit shrank).
        return log[len(log) - limit.per_window] + limit.window - now


_KINDS: dict[LimiterKind, Callable[[float, RateLimit], Limiter]] = {
    "token_bucket": TokenBucket,
    "fixed_window": FixedWindow,
    "sliding_window": SlidingWindow,
}


class RateLimiters:
    """One limiter per (provider, API key); a key's limiter starts afresh when the configured kind changes."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._limiters: dict[tuple[str, str], Limiter] = {}

    def take(self, provider: str, api_key: str, limit: RateLimit) -> float | None:
        """``None`` if this request passes, else the seconds until one would pass."""
        now = self._clock()
        limiter = self._limiters.get((provider, api_key))
        if limiter is None or limiter.kind != limit.kind:
            limiter = self._limiters[(provider, api_key)] = _KINDS[limit.kind](now, limit)
        return limiter.take(now, limit)


def retry_after(wait: float, style: RetryAfterStyle) -> str:
    """The ``Retry-After`` value for ``wait`` seconds, rounded up: whole seconds (at least 1) for ``"seconds"``,
    decimal seconds to the millisecond (at least 0.001) for ``"exact"``."""
    if style == "seconds":
        return str(max(1, math.ceil(wait - _EPSILON)))
    millis = max(1, math.ceil(wait * 1000.0 - _EPSILON * 1000.0))
    return f"{millis / 1000.0:.3f}".rstrip("0").rstrip(".")
