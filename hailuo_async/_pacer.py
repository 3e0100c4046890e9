"""Request pacing shared by every submit and status check of one client.

:class:`RequestPacer` is a token bucket per client. With a fixed ``requests_per_second`` it simply spaces requests.
Without one it learns the provider's limit: a slow start doubles the rate every quarter second until the first
429, which sets the rate a little under what the provider accepted just before; then the rate creeps up again,
slowly, while no 429 comes. Any 429 also pauses every request of the client for the server's ``Retry-After``.
After a 429 the rate stays under the lowest rate the provider was measured to accept, and only probes above it
after a long quiet spell. Waiting requests queue in two lines, served one token at a time by whichever waiter
holds the dispatcher role (no extra task, no stampede): status checks before submits, since a check is due at a
precise moment (a video is about to be ready) while a submit only waits its turn. A separate, optional submit
budget (MiniMax's documented requests per minute) gates submits only.
"""

from __future__ import annotations

import collections
import math

import anyio

from ._clock import Clock

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


class _Tally:
    """Answered requests counted per tenth of a second: what was accepted since a moment, in constant memory
    per second kept (a deque of timestamps would hold one float per request)."""

    SLOT = 0.1

    def __init__(self) -> None:
        self._slots: collections.deque[list[int]] = collections.deque()  # [slot number, count]

    def add(self, now: float, *, keep: float) -> None:
        slot = int(now / self.SLOT)
        slots = self._slots
        if slots and slots[-1][0] == slot:
            slots[-1][1] += 1
        else:
            slots.append([slot, 1])
        oldest = int((now - keep) / self.SLOT)
        while slots[0][0] < oldest:
            slots.popleft()

    def since(self, moment: float) -> int:
        first = int(moment / self.SLOT)
        return sum(count for slot, count in self._slots if slot >= first)

    def clear(self) -> None:
        self._slots.clear()


class _Waiter:
    __slots__ = ("dispatch", "event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False  # holds a token
        self.dispatch = False  # hands out tokens until it holds one itself


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
    WINDOW = 30.0
    """Longest span, in seconds, over which the rate the provider accepts is measured."""
    MARGIN = 0.97
    """Share of the measured accepted rate used after a 429."""
    FAST_GROWTH = 0.25
    """Relative increase per second while the rate is far below the measured limit."""
    SLOW_GROWTH = 0.003
    """Relative increase per second near a measured limit (up to ``MARGIN`` of it)."""
    QUIET = 30.0
    """Seconds without a 429 after which the measured limit is probed 5% higher."""
    PROBE_STEP = 0.05
    """Relative step of that probe."""

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
        self._submit_budget = TokenBucket(submit_rate, clock, burst=1.0) if submit_rate else None
        self._paused_until = 0.0
        self._cooldown_until = 0.0
        self._accepted = _Tally()
        self._measure_from = clock.monotonic()
        self._last_growth = clock.monotonic()
        self._ceiling: float | None = None
        self._limited = False
        self._checks: collections.deque[_Waiter] = collections.deque()
        self._submits_waiting: collections.deque[_Waiter] = collections.deque()
        self._dispatching = False  # some waiter holds the dispatcher role
        self._last_limited = clock.monotonic()
        self.rate_limited = 0

    @property
    def current_rate(self) -> float | None:
        """Requests per second currently allowed, ``None`` while unlimited."""
        return self._bucket.rate if self._bucket is not None else None

    async def acquire(self, *, submit: bool = False) -> None:
        """Wait until one more request (a submit if ``submit``) may be sent."""
        if submit and self._submit_budget is not None:
            await self._submit_budget.acquire()
        if not self._dispatching and self._paused_until <= self.clock.monotonic():
            bucket = self._bucket
            if bucket is None or bucket.take() <= 0:
                return  # nobody waiting and a token at hand: no queueing at all
        waiter = _Waiter()
        line = self._submits_waiting if submit else self._checks
        line.append(waiter)
        try:
            if not self._dispatching:
                self._dispatching = waiter.dispatch = True
            while not waiter.granted:
                if waiter.dispatch:
                    await self._dispatch(waiter)
                else:
                    await waiter.event.wait()
        except BaseException:  # cancelled: leave the line; a dispatcher hands its role on
            if not waiter.granted:
                line.remove(waiter)
            if waiter.dispatch:
                waiter.dispatch = False
                self._hand_over()
            raise

    async def _dispatch(self, me: _Waiter) -> None:
        """Hand out tokens as they come, checks first, until ``me`` has one; then pass the role on."""
        while not me.granted:
            pause = self._paused_until - self.clock.monotonic()
            if pause > 0:
                await self.clock.sleep(pause)
                continue
            bucket = self._bucket
            if bucket is not None and (wait := bucket.take()) > 0:
                await self.clock.sleep(wait)
                continue
            chosen = self._checks.popleft() if self._checks else self._submits_waiting.popleft()
            chosen.granted = True
            if chosen is not me:
                chosen.event.set()
        me.dispatch = False
        self._hand_over()

    def _hand_over(self) -> None:
        head = self._checks[0] if self._checks else self._submits_waiting[0] if self._submits_waiting else None
        if head is None:
            self._dispatching = False
        else:
            head.dispatch = True
            head.event.set()

    def on_success(self) -> None:
        """Record an answered request (any status but 429)."""
        now = self.clock.monotonic()
        self._accepted.add(now, keep=self.WINDOW)
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
            if ceiling is not None and now - self._last_limited > self.QUIET:
                # No 429 for a long while: the provider's limit may have risen; probe a little above.
                ceiling = self._ceiling = ceiling * (1.0 + self.PROBE_STEP)
                self._last_limited = now
            rate = bucket.rate
            if ceiling is None or rate < 0.9 * ceiling:
                rate *= (1.0 + self.FAST_GROWTH) ** elapsed
            elif rate < self.MARGIN * ceiling:
                rate *= (1.0 + self.SLOW_GROWTH) ** elapsed
            if ceiling is not None and bucket.rate < self.MARGIN * ceiling:
                rate = min(rate, self.MARGIN * ceiling)  # never past what the provider was seen to accept
            bucket.set_rate(rate)
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
        self._last_limited = now
        self._cooldown_until = self._paused_until + 0.2
        span = now - max(self._measure_from, now - self.WINDOW)
        count = self._accepted.since(now - span)
        if span >= 0.5 and count >= 3:
            measured = count / span
            ceiling = self._ceiling
            # The lowest rate the provider was seen to accept (the first measurement includes its burst).
            if ceiling is None or measured < ceiling:
                self._ceiling = ceiling = measured
            target = min(measured, ceiling) * self.MARGIN
        else:  # too little sending to measure: start low, grow fast until the next 429 measures it
            target = max(float(count), 1.0) * 0.5
        target = max(self.min_rate, target)
        if self._bucket is None:
            self._bucket = TokenBucket(target, self.clock, burst=1.0)
        else:
            self._bucket.set_rate(target)
            self._bucket.burst = 1.0
        # The next measurement starts now, with the provider's bucket empty (it just refused): what it accepts
        # from here, pause included, is its sustained rate, without the burst it had saved up before.
        self._measure_from = now
        self._accepted.clear()
