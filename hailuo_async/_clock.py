"""Time, as the engine sees it: the real clock, and a virtual one that makes hours of polling take milliseconds.

Every module that waits or reads the time (the pacer, the poller, the submit, batches) takes a :class:`Clock`;
the client passes :class:`SystemClock` unless a test passes :class:`FakeClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """Where the engine reads time and sleeps; tests swap in :class:`FakeClock`."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def time(self) -> float:
        """Unix time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (at least a scheduling point when 0 or less)."""
        ...

    async def wait(self, event: anyio.Event, timeout: float | None) -> None:
        """Wait until ``event`` is set or ``timeout`` seconds pass (``None``: no timeout); the event may be set
        when the timeout passes (callers use a fresh event per wait)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))

    async def wait(self, event: anyio.Event, timeout: float | None) -> None:
        if timeout is None:
            await event.wait()
        elif timeout > 0:
            # One plain timer rather than a cancel scope: the poller waits like this thousands of times.
            timer = asyncio.get_running_loop().call_later(timeout, event.set)
            try:
                await event.wait()
            finally:
                timer.cancel()


class FakeClock:
    """A virtual clock for tests: sleeps take no real time. When every sleeper is waiting, the clock jumps to
    the earliest wake-up. Time only moves forward, so hours of polling run in milliseconds.

    Usage: ``HailuoClient(..., transport=MockTransport(handler), clock=FakeClock())``."""

    def __init__(self, start: float = 1_000.0, *, unix_offset: float = 1_700_000_000.0, settle: int = 20) -> None:
        """``settle``: event-loop turns every runnable task gets before the clock jumps to the next wake-up. Work
        that takes more turns than that (a poller handing out hundreds of due checks at once, a few per turn) sees
        time jump before it is done, as if it were slow: raise it for such bursts (the benchmarks use 100)."""
        self._now = start
        self._unix_offset = unix_offset
        self._settle = settle
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._counter = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._unix_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by hand, waking whoever is due."""
        self._now += max(seconds, 0.0)
        self._wake_due()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            heapq.heappop(self._sleepers)[2].set()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._counter), event))
        if self._driver is None or self._driver.done():
            # aiohttp already ties the library to asyncio, so a plain asyncio task drives the clock.
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        await event.wait()

    async def wait(self, event: anyio.Event, timeout: float | None) -> None:
        if timeout is None:
            await event.wait()
            return
        if timeout <= 0:
            return
        async with anyio.create_task_group() as tg:

            async def sleeper() -> None:
                await self.sleep(timeout)
                tg.cancel_scope.cancel()

            async def waiter() -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(sleeper)
            tg.start_soon(waiter)

    async def _drive(self) -> None:
        # Give every runnable task ``settle`` turns of the event loop to reach its next await, then jump to the
        # earliest wake-up; stop when nobody sleeps any more (the next sleep starts a new driver). Only public
        # asyncio API: the loop's ready queue is not inspected.
        while self._sleepers:
            for _ in range(self._settle):
                await asyncio.sleep(0)
            if self._sleepers:
                self._now = max(self._now, self._sleepers[0][0])
                self._wake_due()
