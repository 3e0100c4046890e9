"""Request pacing shared by every request of one client (through :mod:`._sender`).

:class:`RequestPacer` is a token bucket per client. With a fixed ``requests_per_second`` it simply spaces requests.
Without one it learns the provider's limit, whatever kind of limiter the provider runs (token bucket with any burst,
fixed or sliding windows): a slow start doubles the rate every quarter second until the first 429. At each 429
(requests refused together count as one) every request pauses for the server's ``Retry-After``, and the rate drops
to just under what the provider accepted over the last :attr:`RequestPacer.MEASURE` seconds; the first 429, and any
that comes within a second of resuming after the last, also halve it, since the count may still hold a burst the
provider had saved up. While requests wait, the rate climbs back quickly to just under the best rate measured lately
(one a later 429 proves too high is forgotten), never past it. The limit lies between that measurement and the rate
last refused, so from there the rate climbs across the gap in :attr:`RequestPacer.GAP_TIME` seconds, to a margin
under the refused rate, then probes slowly, so that a raised limit is found without many 429s. The gap matters when
the pauses themselves cost the provider's allowance (a whole-second ``Retry-After`` on a limiter that saves nothing
up): measured over them, the rate reads low, and the climb outgrows that in seconds, not minutes (``python -m
benchmarks.bench_pacer`` plays every kind of limiter, with exact and whole-second ``Retry-After``).

Waiting requests queue in two lines, served one token at a time by whichever waiter holds the dispatcher role (no
extra task, no stampede): status checks before submits, since a check is due at a precise moment (a video is about
to be ready) while a submit only waits its turn. A separate, optional submit budget (MiniMax's documented requests
per minute) gates submits only.
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
    MEASURE = 10.0
    """Seconds over which the rate the provider accepts is counted at each 429."""
    MIN_SPAN = 1.0
    """Shortest time counted: a 429 sooner after the start halves the rate instead."""
    MARGIN = 0.95
    """Share of the measured accepted rate sent at after a 429."""
    CATCH_UP = 0.5
    """Relative growth per second, while requests wait, below the best rate measured lately."""
    PROBE_GROWTH = 0.0025
    """Relative growth per second, while requests wait, above the rate last refused: a raised limit is found without
    many 429s."""
    GAP_TIME = 30.0
    """Seconds in which the rate climbs, while requests wait, from the best rate measured lately to ``MARGIN ** 2``
    of the rate last refused (the limit lies between them; a 429 right after resuming counts half its rate)."""
    REPEAT_BACKOFF = 0.5
    """Share of the current rate kept at most at the first 429, and at one that comes within :attr:`MIN_SPAN` of
    resuming after the last."""
    REMEMBERED = 5
    """429 events whose measurements are remembered (the best of them is where probing slows down, until a 429 at a
    lower rate proves it too high)."""

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
        self._recent = _Tally()  # answered requests of the last MEASURE seconds
        self._since = clock.monotonic()  # counting started here
        self._measured: collections.deque[float] = collections.deque(maxlen=self.REMEMBERED)
        self._last_event: float | None = None
        self._last_growth = clock.monotonic()
        self._limited = False
        self._refused: float | None = None  # the rate last refused (half of it right after resuming)
        self._checks: collections.deque[_Waiter] = collections.deque()
        self._submits_waiting: collections.deque[_Waiter] = collections.deque()
        self._routine: collections.deque[_Waiter] = collections.deque()  # checks unlikely to find a finish
        self._granted = 0  # tokens handed out from the lines
        self._dispatching = False  # some waiter holds the dispatcher role
        self.rate_limited = 0

    @property
    def current_rate(self) -> float | None:
        """Requests per second currently allowed, ``None`` while unlimited."""
        return self._bucket.rate if self._bucket is not None else None

    async def acquire(self, *, submit: bool = False, routine: bool = False) -> None:
        """Wait until one more request (a submit if ``submit``) may be sent. Tokens go to status checks first,
        then submits, then ``routine`` checks (those unlikely to find a task finished): under a rate limit, a
        check that decides a result's lag goes first, and submits are not held back by checks that could wait."""
        if submit and self._submit_budget is not None:
            await self._submit_budget.acquire()
        if not self._dispatching and self._paused_until <= self.clock.monotonic():
            bucket = self._bucket
            if bucket is None or bucket.take() <= 0:
                return  # nobody waiting and a token at hand: no queueing at all
        waiter = _Waiter()
        line = self._submits_waiting if submit else self._routine if routine else self._checks
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
            chosen = self._head(pop=True)
            assert chosen is not None  # ``me`` at least is waiting
            chosen.granted = True
            if chosen is not me:
                chosen.event.set()
        me.dispatch = False
        self._hand_over()

    ROUTINE_SHARE = 4
    """While submits and routine checks both wait, every this many tokens one goes to a routine check: submits are
    not held back by checks that could wait, nor do those wait for every submit."""

    def _head(self, *, pop: bool = False) -> _Waiter | None:
        """The next waiter to get a token: checks, then submits, then routine checks (one in
        :attr:`ROUTINE_SHARE` while both wait)."""
        lines: tuple[collections.deque[_Waiter], ...] = (self._checks, self._submits_waiting, self._routine)
        if not self._checks and self._routine and self._submits_waiting and self._granted % self.ROUTINE_SHARE == 0:
            lines = (self._routine,)
        for line in lines:
            if line:
                if pop:
                    self._granted += 1
                    return line.popleft()
                return line[0]
        return None

    def _hand_over(self) -> None:
        head = self._head()
        if head is None:
            self._dispatching = False
        else:
            head.dispatch = True
            head.event.set()

    def on_success(self) -> None:
        """Record an answered request (any status but 429)."""
        now = self.clock.monotonic()
        self._recent.add(now, keep=self.MEASURE)
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
        if elapsed < self.SLOW_START_STEP:
            return
        self._last_growth = now
        if not self._dispatching:
            return  # nobody is waiting for a token: a faster rate would not be tried, so it does not grow
        rate = bucket.rate
        ceiling = max(self._measured, default=None)
        if ceiling is None:
            bucket.set_rate(rate * (1.0 + self.CATCH_UP) ** elapsed)
        elif rate < self.MARGIN * ceiling:  # climbing back: quickly, but not past the mark
            bucket.set_rate(min(rate * (1.0 + self.CATCH_UP) ** elapsed, self.MARGIN * ceiling))
        else:
            growth = self.PROBE_GROWTH
            refused = self._refused
            if refused is not None and rate < self.MARGIN**2 * refused:  # the limit lies between them: cross the gap
                growth = max(growth, math.log(refused / ceiling) / self.GAP_TIME)
            bucket.set_rate(rate * (1.0 + growth) ** elapsed)

    def on_rate_limited(self, retry_after: float | None, default_pause: float = 1.0) -> None:
        """Record a 429: pause everything for ``retry_after`` and, when learning, slow down to just under what the
        provider accepted lately.

        What it accepted is counted over the last :attr:`MEASURE` seconds: for a token bucket that is its rate
        (plus what remained of a saved-up burst), for a window limiter what its windows allowed; the client then
        sends at :attr:`MARGIN` of it. Below the best rate measured lately it climbs back quickly; from there it
        crosses the gap to the rate this 429 refused in :attr:`GAP_TIME` seconds, then probes slowly, so that a raised
        limit is found without many 429s. A 429 at a steady rate (not right after
        resuming) forgets the measurements at or above that rate: they held a saved-up burst, or the limit came
        down."""
        self.rate_limited += 1
        now = self.clock.monotonic()
        pause = retry_after if retry_after is not None and math.isfinite(retry_after) else default_pause
        resumed = self._paused_until  # when the previous pause ended
        self._paused_until = max(self._paused_until, now + pause)
        self._last_growth = max(now, self._paused_until)
        if self.fixed_rate is not None or now < self._cooldown_until:
            return  # requests already in flight when the rate was lowered: one event, not many
        self._limited = True
        self._cooldown_until = self._paused_until + 0.2
        bucket = self._bucket
        sending = bucket.rate if bucket is not None else self.UNLIMITED
        span = min(self.MEASURE, now - self._since)
        # The first 429 ends a slow start that overshot; one within a second of resuming after the last means the
        # count still held a saved-up burst (or a neighbour on the same key drew it): back off further, and judge
        # no measurement by it.
        repeat = self._last_event is None or now - resumed < self.MIN_SPAN
        if span >= self.MIN_SPAN:
            measured = min(self._recent.since(now - span) / span, sending)
            if not repeat:  # refused at a steady rate: what was measured at or above it was too high
                self._measured = collections.deque(
                    (known for known in self._measured if known < sending), maxlen=self.REMEMBERED
                )
            self._measured.append(measured)
            target = self.MARGIN * measured
        else:  # too soon to measure: halve, then climb back quickly
            target = 0.5 * sending
        if repeat:
            target = min(target, self.REPEAT_BACKOFF * sending)
        self._last_event = now
        if not repeat:
            self._refused = sending
        else:  # a saved-up burst may have hidden how fast was too fast
            half = self.REPEAT_BACKOFF * sending
            self._refused = half if self._refused is None else min(self._refused, half)
        target = max(self.min_rate, min(target, sending))
        if bucket is None:
            self._bucket = TokenBucket(target, self.clock, burst=1.0)
        else:
            bucket.set_rate(target)
            bucket.burst = 1.0
