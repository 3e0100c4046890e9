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
    submits. Statistics: ``rate_limited`` counts 429s seen, ``current_rate`` the rate in force (``None`` while
    unlimited)."""

    WINDOW = 3.0
    """Seconds of history used to measure the rate the provider accepted."""
    BACKOFF = 0.9
    """Share of the measured accepted rate kept after a 429."""
    GROWTH = 0.02
    """Relative rate increase per second without a 429 (gentle: about 1.2x per 10 s)."""

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
        self._accepted: collections.deque[float] = collections.deque()
        self._last_growth = clock.monotonic()
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
        if self.fixed_rate is None and self._bucket is not None:
            elapsed = now - self._last_growth
            if elapsed >= 1.0:
                self._bucket.set_rate(self._bucket.rate * (1.0 + self.GROWTH) ** elapsed)
                self._last_growth = now

    def on_rate_limited(self, retry_after: float | None, default_pause: float = 1.0) -> None:
        """Record a 429: pause everything for ``retry_after`` and, when learning, lower the rate."""
        self.rate_limited += 1
        now = self.clock.monotonic()
        pause = retry_after if retry_after is not None and math.isfinite(retry_after) else default_pause
        self._paused_until = max(self._paused_until, now + pause)
        self._last_growth = max(now, self._paused_until)
        if self.fixed_rate is not None:
            return
        accepted = self._accepted
        while accepted and accepted[0] < now - self.WINDOW:
            accepted.popleft()
        span = (now - accepted[0]) if len(accepted) > 1 else self.WINDOW
        measured = len(accepted) / max(span, 0.5)
        current = self._bucket.rate if self._bucket is not None else math.inf
        target = max(self.min_rate, min(current, measured) * self.BACKOFF)
        if self._bucket is None:
            self._bucket = TokenBucket(target, self.clock, burst=1.0)
        else:
            self._bucket.set_rate(target)
