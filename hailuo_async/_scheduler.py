"""Request pacing shared by every submit and status check of one client.

:class:`RequestPacer` is a token bucket per client. With a fixed ``requests_per_second`` it simply spaces requests.
Without one it learns the provider's limit: a slow start doubles the rate every quarter second until the first
429, which sets the rate a little under what the provider accepted just before; then the rate creeps up again,
slowly, while no 429 comes. Any 429 also pauses every request of the client for the server's ``Retry-After``.
Status checks go before waiting submits: a check is due at a precise moment (a video is about to be ready),
while a submit only waits its turn. A separate, optional submit budget (MiniMax's documented requests per minute)
gates submits only.
"""

from __future__ import annotations

import collections
import math

import anyio

from ._config import Clock

__all__ = ["RequestPacer", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, clock: Clock, *, burst: float = 1.0) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._stamp = clock.monotonic()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> float:
        """Take a token if one is there (returns 0), else the seconds until one will be."""
        self._refill(self.clock.monotonic())
        if self._tokens >= 1.0 - 1e-9:  # float dust must not make anyone wait a nanosecond forever
            self._tokens -= 1.0
            return 0.0
        return max((1.0 - self._tokens) / self.rate, 1e-6)

    async def acquire(self) -> None:
        """Wait for a token and take it."""
        while (wait := self.take()) > 0:
            await self.clock.sleep(wait)

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on."""
        self._refill(self.clock.monotonic())
        self.rate = rate


class RequestPacer:
    """Paces all API requests of one client, and pauses them all after a 429.

    ``fixed_rate`` (requests per second) disables learning. ``submit_rate`` (per second) additionally gates
    submits. In-flight requests refused together count as one 429 event."""

    INITIAL_RATE = 20.0
    """Requests per second allowed at first while learning (slow start)."""
    SLOW_START_STEP = 0.25
    """Seconds between doublings of the rate until the first 429."""
    UNLIMITED = 5000.0
    """Above this rate, slow start stops pacing altogether."""
    WINDOW = 2.0
    """Seconds of sending used to measure the rate the provider accepts."""
    MARGIN = 0.95
    """Share of the measured accepted rate used after a 429."""
    FAST_GROWTH = 0.25
    """Relative increase per second while the rate is far below the measured limit."""
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
        initial = fixed_rate or self.INITIAL_RATE
        self._bucket: TokenBucket | None = TokenBucket(initial, clock, burst=1.0 if fixed_rate else initial / 4)
        self._submits = TokenBucket(submit_rate, clock, burst=1.0) if submit_rate else None
        self._paused_until = 0.0
        self._cooldown_until = 0.0
        self._accepted: collections.deque[float] = collections.deque()
        self._measure_from = clock.monotonic()
        self._last_growth = clock.monotonic()
        self._ceiling: float | None = None
        self._limited = False
        self._turn = anyio.Lock()  # one waiter at a time at the bucket, first come first served: no stampede
        self._checks_waiting = 0
        self._checks_done: anyio.Event | None = None  # made by a submit that has to let status checks go first
        self.rate_limited = 0

    @property
    def current_rate(self) -> float | None:
        """Requests per second currently allowed, ``None`` while unlimited."""
        return self._bucket.rate if self._bucket is not None else None

    async def acquire(self, *, submit: bool = False) -> None:
        """Wait until one more request (a submit if ``submit``) may be sent."""
        if submit and self._submits is not None:
            await self._submits.acquire()
        if not submit:
            self._checks_waiting += 1
        try:
            while True:
                pause = self._paused_until - self.clock.monotonic()
                if pause > 0:
                    await self.clock.sleep(pause)
                    continue
                if submit and self._checks_waiting:
                    if self._checks_done is None:
                        self._checks_done = anyio.Event()
                    await self._checks_done.wait()  # status checks first
                    continue
                bucket = self._bucket
                if bucket is None:
                    return
                if bucket.take() <= 0:  # a token is there: no queueing at all
                    return
                async with self._turn:
                    while (wait := bucket.take()) > 0 and self._paused_until <= self.clock.monotonic():
                        await self.clock.sleep(wait)
                    if wait <= 0:
                        return
        finally:
            if not submit:
                self._checks_waiting -= 1
                if self._checks_waiting == 0 and self._checks_done is not None:
                    self._checks_done.set()
                    self._checks_done = None

    def on_success(self) -> None:
        """Record an answered request (any status but 429)."""
        now = self.clock.monotonic()
        accepted = self._accepted
        accepted.append(now)
        while accepted and accepted[0] < now - self.WINDOW:
            accepted.popleft()
        bucket = self._bucket
        if self.fixed_rate is not None or bucket is None:
            return
        elapsed = now - self._last_growth
        if not self._limited:  # slow start: double every step until the first 429
            if elapsed >= self.SLOW_START_STEP:
                rate = bucket.rate * 2.0 ** (elapsed / self.SLOW_START_STEP)
                self._last_growth = now
                if rate > self.UNLIMITED:
                    self._bucket = None
                else:
                    bucket.set_rate(rate)
                    bucket.burst = max(1.0, rate / 4)
            return
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
        self._limited = True
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
            self._bucket.burst = 1.0
        self._measure_from = self._paused_until
        accepted.clear()
