"""The request pacer against the common kinds of provider rate limiter, in virtual time.

``python -m benchmarks.bench_pacer`` plays each limiter kind (token bucket with small and large bursts, fixed
windows per second and per minute, sliding windows) against a :class:`~hailuo_async._pacer.RequestPacer` that has
more work than the limit allows (16 senders, every request answered at once), on a
:class:`~hailuo_async.FakeClock`: two minutes of traffic take a second. It prints, per limiter, the accepted rate
after the first quarter of the run as a share of the limit, and the share of requests answered 429: the figures
the poller-and-pacer issue sets goals for (accepted >= 90 % of the limit while work waits, <= 1 % 429s).
Each refusal carries the ``Retry-After`` that limiter kind would truthfully send, played twice: exact (to the
millisecond), and rounded up to whole seconds, as an HTTP ``Retry-After`` header carries it (and as a client without
one waits: a second). A limiter that saves nothing up loses what the pauses' rounding wastes; the pacer must not
mistake that for its limit.
"""

from __future__ import annotations

import argparse
import collections
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio

from hailuo_async import FakeClock
from hailuo_async._pacer import RequestPacer


class Limiter(Protocol):
    def admit(self) -> tuple[bool, float | None]:
        """``(accepted, retry_after)`` for one request arriving now."""
        ...


class TokenBucket:
    """``rate`` per second, at most ``burst`` saved up; Retry-After: time to the next token."""

    def __init__(self, clock: FakeClock, rate: float, burst: float) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self.tokens, self.stamp = burst, clock.monotonic()

    def admit(self) -> tuple[bool, float | None]:
        now = self.clock.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, None
        return False, (1 - self.tokens) / self.rate


class FixedWindow:
    """``limit`` per window of ``window`` seconds, counted from a fixed origin; Retry-After: time to its end."""

    def __init__(self, clock: FakeClock, limit: int, window: float) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self.current, self.count = -1, 0

    def admit(self) -> tuple[bool, float | None]:
        now = self.clock.monotonic()
        index = math.floor(now / self.window)
        if index != self.current:
            self.current, self.count = index, 0
        if self.count < self.limit:
            self.count += 1
            return True, None
        return False, (index + 1) * self.window - now


class SlidingWindow:
    """``limit`` in any ``window`` seconds; Retry-After: until the oldest accepted request leaves the window."""

    def __init__(self, clock: FakeClock, limit: int, window: float) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self.log: collections.deque[float] = collections.deque()

    def admit(self) -> tuple[bool, float | None]:
        now = self.clock.monotonic()
        while self.log and self.log[0] <= now - self.window:
            self.log.popleft()
        if len(self.log) < self.limit:
            self.log.append(now)
            return True, None
        return False, self.log[0] + self.window - now


@dataclass(frozen=True)
class Case:
    name: str
    limit: float  # sustainable requests per second
    make: Callable[[FakeClock], Limiter]


CASES = (
    Case("token bucket 20/s, burst 1", 20.0, lambda c: TokenBucket(c, 20.0, 1.0)),
    Case("token bucket 20/s, burst 20", 20.0, lambda c: TokenBucket(c, 20.0, 20.0)),
    Case("token bucket 20/s, burst 200", 20.0, lambda c: TokenBucket(c, 20.0, 200.0)),
    Case("fixed window 20 per second", 20.0, lambda c: FixedWindow(c, 20, 1.0)),
    Case("fixed window 600 per minute", 10.0, lambda c: FixedWindow(c, 600, 60.0)),
    Case("sliding window 20 per second", 20.0, lambda c: SlidingWindow(c, 20, 1.0)),
    Case("sliding window 100 per 10 s", 10.0, lambda c: SlidingWindow(c, 100, 10.0)),
    Case("token bucket 50/s, burst 10", 50.0, lambda c: TokenBucket(c, 50.0, 10.0)),
)


@dataclass(frozen=True)
class Result:
    case: Case
    accepted_share: float  # accepted rate after the warm-up, as a share of the limit
    refused_share: float  # 429s among all requests
    accepted_at: tuple[float, ...]  # when each accepted request was answered, seconds from the start
    refused_at: tuple[float, ...]  # when each 429 was


async def play(case: Case, *, seconds: float, senders: int = 16, whole_seconds: bool = False) -> Result:
    """``senders`` keep requests waiting for ``seconds``; ``whole_seconds`` rounds every ``Retry-After`` up."""
    clock = FakeClock()
    pacer = RequestPacer(clock)
    limiter = case.make(clock)
    accepted: list[float] = []
    refused: list[float] = []
    start = clock.monotonic()

    async def sender() -> None:
        while clock.monotonic() - start < seconds:
            await pacer.acquire(submit=True)
            ok, retry_after = limiter.admit()
            if ok:
                accepted.append(clock.monotonic() - start)
                pacer.on_success()
            else:
                refused.append(clock.monotonic() - start)
                if whole_seconds and retry_after is not None:
                    retry_after = float(max(1, math.ceil(retry_after - 1e-9)))
                pacer.on_rate_limited(retry_after, 1.0)

    async with anyio.create_task_group() as tg:
        for _ in range(senders):
            tg.start_soon(sender)
    warm = seconds / 4
    late = sum(1 for moment in accepted if moment >= warm)
    return Result(
        case,
        late / (seconds - warm) / case.limit,
        len(refused) / max(1, len(accepted) + len(refused)),
        tuple(accepted),
        tuple(refused),
    )


async def main(seconds: float) -> None:
    print(f"{'':32s} {'exact Retry-After':>25s} {'whole-second Retry-After':>25s}")
    print(f"{'limiter':32s} {'accepted / limit':>17s} {'429s':>7s} {'accepted / limit':>17s} {'429s':>7s}")
    for case in CASES:
        exact = await play(case, seconds=seconds)
        whole = await play(case, seconds=seconds, whole_seconds=True)
        print(
            f"{case.name:32s} {exact.accepted_share:17.1%} {exact.refused_share:7.2%}"
            f" {whole.accepted_share:17.1%} {whole.refused_share:7.2%}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=240.0, help="virtual seconds per limiter (default 240)")
    anyio.run(main, parser.parse_args().seconds)
