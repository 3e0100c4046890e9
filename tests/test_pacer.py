"""The request pacer on the fake clock: who gets the next token, what a cancelled waiter leaves behind, and how
the learned rate behaves around the provider's limit."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest

from hailuo_async import FakeClock
from hailuo_async._pacer import RequestPacer

pytestmark = pytest.mark.anyio


async def test_status_checks_go_before_queued_submits() -> None:
    clock = FakeClock()
    pacer = RequestPacer(clock, fixed_rate=10.0)  # one token per 0.1 s, none saved up
    await pacer.acquire(submit=True)  # takes the only token
    order: list[tuple[str, float]] = []

    async def request(name: str, submit: bool) -> None:
        await pacer.acquire(submit=submit)
        order.append((name, round(clock.monotonic() - 1000.0, 3)))

    async with anyio.create_task_group() as tg:
        for index in range(5):
            tg.start_soon(request, f"submit{index}", True)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        tg.start_soon(request, "check", False)  # queued after five submits
    names = [name for name, _ in order]
    assert names[0] == "check", order  # due at a precise moment: it jumps the queue of submits
    assert names[1:] == [f"submit{index}" for index in range(5)], order  # submits keep their order
    times = [moment for _, moment in order]
    assert times == sorted(times) and times[0] == pytest.approx(0.1, abs=0.01), order
    assert all(b - a == pytest.approx(0.1, abs=0.01) for a, b in itertools.pairwise(times)), order


def _recorder(pacer: RequestPacer, *, submit: bool) -> tuple[list[str], Callable[[str], Coroutine[Any, Any, None]]]:
    """A list of the requests served, in order, and the coroutine function that makes one."""
    served: list[str] = []

    async def request(name: str) -> None:
        await pacer.acquire(submit=submit)
        served.append(name)

    return served, request


async def test_a_cancelled_waiter_leaves_the_line_and_the_rest_are_served() -> None:
    clock = FakeClock()
    pacer = RequestPacer(clock, fixed_rate=5.0)
    await pacer.acquire()
    served, request = _recorder(pacer, submit=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(request, "a")
        await anyio.lowlevel.checkpoint()  # "a" waits first: it hands out the tokens
        inner = anyio.CancelScope()

        async def cancellable() -> None:
            with inner:
                await request("b")

        tg.start_soon(cancellable)
        tg.start_soon(request, "c")
        await clock.sleep(0.05)
        inner.cancel()  # "b" leaves before its turn
    assert served == ["a", "c"]
    # The line is empty again and nobody holds the dispatcher role: the next request is served at once.
    await clock.sleep(1.0)
    before = clock.monotonic()
    await pacer.acquire()
    assert clock.monotonic() == before


async def test_cancelling_the_dispatcher_hands_its_role_on() -> None:
    clock = FakeClock()
    pacer = RequestPacer(clock, fixed_rate=2.0)
    await pacer.acquire()
    served, request = _recorder(pacer, submit=False)

    async with anyio.create_task_group() as tg:
        dispatcher = anyio.CancelScope()

        async def first() -> None:
            with dispatcher:
                await request("first")  # the first waiter dispatches, sleeping for the next token

        tg.start_soon(first)
        await anyio.lowlevel.checkpoint()
        tg.start_soon(request, "second")
        tg.start_soon(request, "third")
        await clock.sleep(0.1)
        dispatcher.cancel()
    assert served == ["second", "third"]


class _ProviderBucket:
    """A provider's limit: ``rate`` requests per second, a burst of ``burst`` saved up (as the simulator does)."""

    def __init__(self, clock: FakeClock, rate: float, burst: float) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self.tokens, self.stamp = burst, clock.monotonic()

    def admit(self) -> bool:
        now = self.clock.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


async def test_learns_the_limit_in_a_few_429s_then_stays_under_it() -> None:
    clock = FakeClock()
    pacer = RequestPacer(clock)
    provider = _ProviderBucket(clock, rate=20.0, burst=20.0)
    refused: list[float] = []
    answered: list[float] = []

    async def sender() -> None:  # as many requests as the pacer lets through, answered at once
        start = clock.monotonic()
        while clock.monotonic() - start < 90.0:
            await pacer.acquire(submit=True)
            if provider.admit():
                answered.append(clock.monotonic() - start)
                pacer.on_success()
            else:
                refused.append(clock.monotonic() - start)
                pacer.on_rate_limited(1.0)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(sender)
    assert 1 <= len(refused) <= 4, refused  # the slow start overshoots once; a second event measures the limit
    assert max(refused) < 10.0, refused  # ...and then it stays under it
    late = [moment for moment in answered if moment >= 30.0]
    assert len(late) / 60.0 >= 18.0, len(late) / 60.0  # within 10% of the limit
    rate = pacer.current_rate  # probing a little above the limit after each quiet spell, never far
    assert rate is not None and rate <= 20.0 * (1 + RequestPacer.PROBE_STEP) ** 3, rate


async def test_quiet_spell_probes_above_the_measured_limit() -> None:
    clock = FakeClock()
    pacer = RequestPacer(clock)
    for _ in range(40):
        await clock.sleep(0.05)
        pacer.on_success()
    pacer.on_rate_limited(0.1)  # measured about 20/s since the start
    learned = pacer.current_rate
    assert learned is not None and learned <= 20.0
    for _ in range(200):  # 12 s of answered requests: the rate stays at or under the limit
        await pacer.acquire()
        pacer.on_success()
        await clock.sleep(0.06)
    grown = pacer.current_rate
    assert grown is not None and grown <= 20.0
    for _ in range(500):  # 30 s more without a 429: it tries a little higher
        await pacer.acquire()
        pacer.on_success()
        await clock.sleep(0.06)
    probed = pacer.current_rate
    assert probed is not None and grown < probed <= grown * (1 + RequestPacer.PROBE_STEP) ** 2 + 0.5
    assert pacer.rate_limited == 1
