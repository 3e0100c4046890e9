"""Request pacing shared by every submit and status check of one client.

:class:`RequestPacer` is a token bucket per provider. With a fixed ``requests_per_second`` it simply spaces
requests. Without one it learns the provider's limit: unlimited until the first 429, then the rate actually
accepted just before it (slightly less), creeping up again while no 429 comes. Any 429 also pauses every request
of the client for the server's ``Retry-After``. A separate, optional submit budget (MiniMax's documented requests
per minute) gates submits only.
"""

from __future__ import annotations

import collections
import math

from ._config import Clock

__all__ = ["RequestPacer", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``acquire`` waits for one token.

    Waiters are served in order of arrival because each one reserves its slot before sleeping."""

    def __init__(self, rate: float, clock: Clock, *, burst: float = 1.0) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._stamp = clock.monotonic()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self) -> float:
        """Take a token, returning how long the caller must wait before using it."""
        now = self.clock.monotonic()
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        """Wait for a token."""
        wait = self.reserve()
        if wait > 0:
            await self.clock.sleep(wait)

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on."""
        self._refill(self.clock.monotonic())
        self.rate = rate


class RequestPacer:
    """Paces all API requests of one client, and pauses them all after a 429.

    ``fixed_rate`` (requests per second) disables learning. ``submit_rate`` (per second) additionally gates
    submits. Learning: a 429 sets the rate to a little under the rate the provider accepted over the last few
    seconds of actual sending (pauses excluded); when too little was sent to measure, a low provisional rate
    grows quickly until the next 429 gives a measurement. Once the limit is known the rate creeps towards it
    slowly, so 429s stay rare. In-flight requests refused together count as one 429 event."""

    WINDOW = 2.0
    """Seconds of sending used to measure the rate the provider accepts."""
    MARGIN = 0.95
    """Share of the measured accepted rate used after a 429."""
    FAST_GROWTH = 0.25
    """Relative increase per second while the limit is unknown or far above the current rate."""
    SLOW_GROWTH = 0.003
    """Relative increase per second near a measured limit."""

    def __init__(
        self,
        clock: Clock,
        *,
        fixed_rate: float | None = None,
        submit_rate: float | None = None,
        min_rate: float = 0.2,
    ) -> None:
        self.clock = clock
        self.fixed_rate = fixed_rate
        self.min_rate = min_rate
        self._bucket: TokenBucket | None = TokenBucket(fixed_rate, clock) if fixed_rate else None
        self._submits = TokenBucket(submit_rate, clock, burst=1.0) if submit_rate else None
        self._paused_until = 0.0
        self._cooldown_until = 0.0
        self._accepted: collections.deque[float] = collections.deque()
        self._measure_from = clock.monotonic()
        self._last_growth = clock.monotonic()
        self._ceiling: float | None = None
        self.rate_limited = 0

    @property
    def current_rate(self) -> float | None:
        """Requests per second currently allowed, ``None`` while unlimited."""
        return self._bucket.rate if self._bucket is not None else None

    async def acquire(self, *, submit: bool = False) -> None:
        """Wait until one more request (a submit if ``submit``) may be sent."""
        if submit and self._submits is not None:
            await self._submits.acquire()
        while True:
            pause = self._paused_until - self.clock.monotonic()
            if pause > 0:
                await self.clock.sleep(pause)
                continue
            if self._bucket is not None:
                wait = self._bucket.reserve()
                if wait > 0:
                    await self.clock.sleep(wait)
                    if self._paused_until > self.clock.monotonic():
                        continue  # a 429 arrived while we slept: the token is spent, wait out the pause
            return

    def on_success(self) -> None:
        """Record an answered request (any status but 429)."""
        now = self.clock.monotonic()
        accepted = self._accepted
        accepted.append(now)
        while accepted and accepted[0] < now - self.WINDOW:
            accepted.popleft()
        bucket = self._bucket
        if self.fixed_rate is None and bucket is not None:
            elapsed = now - self._last_growth
            if elapsed >= 0.5:
                ceiling = self._ceiling
                fast = ceiling is None or bucket.rate < 0.9 * ceiling
                growth = self.FAST_GROWTH if fast else self.SLOW_GROWTH
                bucket.set_rate(bucket.rate * (1.0 + growth) ** elapsed)
                self._last_growth = now

    def on_rate_limited(self, retry_after: float | None, default_pause: float = 1.0) -> None:
        """Record a 429: pause everything for ``retry_after`` and, when learning, lower the rate."""
        self.rate_limited += 1
        now = self.clock.monotonic()
        pause = retry_after if retry_after is not None and math.isfinite(retry_after) else default_pause
        self._paused_until = max(self._paused_until, now + pause)
        self._last_growth = max(now, self._paused_until)
        if self.fixed_rate is not None or now < self._cooldown_until:
            return  # requests already in flight when the rate was lowered: one event, not many
        self._cooldown_until = self._paused_until + 0.2
        span = now - max(self._measure_from, now - self.WINDOW)
        accepted = self._accepted
        while accepted and accepted[0] < now - span:
            accepted.popleft()
        if span >= 0.5 and len(accepted) >= 3:
            measured = len(accepted) / span
            self._ceiling = measured
            target = measured * self.MARGIN
        else:  # too little sending to measure: start low, grow fast until the next 429 measures it
            target = max(float(len(accepted)), 1.0) * 0.5
        target = max(self.min_rate, target)
        if self._bucket is None:
            self._bucket = TokenBucket(target, self.clock, burst=1.0)
        else:
            self._bucket.set_rate(target)
        self._measure_from = self._paused_until
        accepted.clear()
