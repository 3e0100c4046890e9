"""Spending caps: ``max_spend`` on the client and on a batch, against the simulator on loopback and on the mock
transport. A submit's estimated cost is held right before its POST, so concurrent submits cannot pass a cap
together; it stays held for a task that exists or may exist and is freed when none was created; the items a cap
stops fail with ``NotSubmittedError`` caused by ``BudgetExceededError``; and a cap with an item that has no price
refuses to start (docs/providers.md, "Prices")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hailuo_async import (
    BadRequestError,
    BudgetExceededError,
    ConnectError,
    FakeClock,
    Generation,
    GenerationRequest,
    HailuoClient,
    HailuoError,
    HttpRequest,
    HttpResponse,
    InvalidRequestError,
    Journal,
    MockTransport,
    NotSubmittedError,
    PollPolicy,
    RetryPolicy,
    SubmissionUncertainError,
)
from hailuo_async.simulator import Simulator

from ..conftest import SECRET
from .fakegw import FakeGateway, _json, maybe_sent, not_sent

pytestmark = pytest.mark.anyio

FAST_POLL = PollPolicy(max_lag=0.1, min_interval=0.05, max_interval=1.0, deadline=60)
FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.01, lookup_delay=0.01)
HAILUO_02 = "MiniMax-Hailuo-02"


def over_budget(outcome: object) -> bool:
    """Whether an item was stopped by a cap: never sent, with the cap's error as the cause."""
    return isinstance(outcome, NotSubmittedError) and isinstance(outcome.__cause__, BudgetExceededError)


def ten_items(tag: str) -> list[GenerationRequest]:
    return [GenerationRequest(f"item {i} {tag}", duration=6, resolution="768P") for i in range(10)]


# -- against the simulator on 127.0.0.1 -------------------------------------------------------------------------


def sim_client(sim: Simulator, **options: Any) -> HailuoClient:
    return HailuoClient(
        "minimax",
        api_key=SECRET,
        base_url=sim.urls.minimax,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        submits_per_minute=None,
        **options,
    )


async def test_ten_minimax_items_with_a_one_dollar_cap_submit_exactly_three_on_the_simulator(sim: Simulator) -> None:
    tag = uuid.uuid4().hex[:8]
    async with sim_client(sim) as client:
        results = await client.gather_generations(ten_items(tag), return_exceptions=True, max_spend=1.0)
        stats = client.statistics()
    assert sim.stats().tasks_created == 3
    assert sum(isinstance(r, Generation) for r in results) == 3
    assert sum(over_budget(r) for r in results) == 7
    for result in results:
        if isinstance(result, Generation):
            assert (result.estimated_cost, result.charged, result.charge_is_estimate) == (0.28, 0.28, True)
    cause = next(r.__cause__ for r in results if isinstance(r, NotSubmittedError))
    assert isinstance(cause, BudgetExceededError)
    assert (cause.cap, cause.needed) == (1.0, 0.28)
    assert (stats.spent, stats.spent_estimated, stats.unpriced, stats.max_spend) == (0.84, 0.84, 0, None)


async def test_a_client_cap_spans_every_call_on_the_simulator(sim: Simulator) -> None:
    tag = uuid.uuid4().hex[:8]
    items = ten_items(tag)
    async with sim_client(sim, max_spend=1.0) as client:
        first = await client.generate(items[0])
        second = await client.gather_generations(items[1:6], return_exceptions=True)
        with pytest.raises(NotSubmittedError) as info:
            await client.submit(items[6])
        stats = client.statistics()
    assert isinstance(first, Generation)
    assert [isinstance(r, Generation) for r in second] == [True, True, False, False, False]
    assert all(over_budget(r) for r in second[2:])
    assert isinstance(info.value.__cause__, BudgetExceededError)
    assert sim.stats().tasks_created == 3
    assert (stats.spent, stats.max_spend) == (0.84, 1.0)


# -- on the mock transport --------------------------------------------------------------------------------------


def mock_client(gw: FakeGateway, clock: FakeClock, handler: Any = None, **options: Any) -> HailuoClient:
    return HailuoClient(
        gw.provider,
        api_key="k",
        transport=MockTransport(handler or gw),
        clock=clock,
        retry=FAST_RETRY,
        submits_per_minute=None,
        **options,
    )


def slow_submits(gw: FakeGateway, clock: FakeClock, seconds: float = 5.0) -> Callable[[HttpRequest], Any]:
    """``gw`` answering every submit only after ``seconds``: all of a batch's POSTs are on the wire together."""

    async def handler(request: HttpRequest) -> HttpResponse:
        if request.route == "submit":
            await clock.sleep(seconds)
        return gw(request)

    return handler


async def test_ten_minimax_items_with_a_one_dollar_cap_submit_exactly_three_on_the_mock_transport() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 30.0)
    async with mock_client(gw, clock, slow_submits(gw, clock), max_concurrency=16) as client:
        results = await client.gather_generations(ten_items("mock"), return_exceptions=True, max_spend=1.0)
        stats = client.statistics()
    assert sum(gw.posts.values()) == 3  # ten submits in flight together: the cap held for each before its POST
    assert sum(isinstance(r, Generation) for r in results) == 3
    assert sum(over_budget(r) for r in results) == 7
    assert stats.spent == 0.84


async def test_as_completed_takes_a_cap_too() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 30.0)
    async with mock_client(gw, clock, slow_submits(gw, clock)) as client:
        outcomes = [o async for _, o in client.as_completed(ten_items("ac"), max_spend=0.56)]
    assert sum(gw.posts.values()) == 2
    assert sum(isinstance(o, Generation) for o in outcomes) == 2
    assert sum(over_budget(o) for o in outcomes) == 8


async def test_a_cap_exactly_reached_still_submits_the_last_item() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 30.0)
    async with mock_client(gw, clock) as client:
        await client.gather_generations(ten_items("exact"), return_exceptions=True, max_spend=0.84)
    assert sum(gw.posts.values()) == 3  # 3 x $0.28 is $0.84 exactly, not $0.8400000000000001


@pytest.mark.parametrize("failure", ["refused", "never sent"])
async def test_a_submit_that_created_no_task_frees_its_hold(failure: str) -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 30.0)

    def fault(request: HttpRequest) -> HttpResponse | None:
        if request.route != "submit" or b"first" not in (request.body or b""):
            return None
        if failure == "never sent":
            return not_sent(request)
        return _json({"base_resp": {"status_code": 2013, "status_msg": "invalid params"}})

    gw.faults.append(fault)
    items = ["first", "second", "third", "fourth"]
    async with mock_client(gw, clock, max_concurrency=1) as client:
        results = await client.gather_generations(items, return_exceptions=True, max_spend=0.56)
    assert isinstance(results[0], (BadRequestError, ConnectError))
    assert [isinstance(r, Generation) for r in results[1:3]] == [True, True]
    assert over_budget(results[3])


async def test_an_uncertain_submit_keeps_its_hold() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 30.0)
    gw.faults.append(lambda r: maybe_sent(r) if r.route == "submit" and b"first" in (r.body or b"") else None)
    async with mock_client(gw, clock, max_concurrency=1) as client:
        results = await client.gather_generations(["first", "second", "third"], return_exceptions=True, max_spend=0.56)
        stats = client.statistics()
    assert isinstance(results[0], SubmissionUncertainError)  # a task may exist: its cost stays counted
    assert isinstance(results[1], Generation)
    assert over_budget(results[2])
    assert (stats.spent, stats.spent_estimated) == (0.56, 0.56)


async def test_a_cap_with_an_item_without_a_price_refuses_to_start_and_names_it() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax")
    prices = {"minimax": {HAILUO_02: {"768p": {6: 0.28}}}}
    items: list[str | GenerationRequest] = [
        "a",
        GenerationRequest("b", duration=10),
        GenerationRequest("not valid on minimax", resolution="512p"),
    ]
    async with mock_client(gw, clock, prices=prices) as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.gather_generations(items, max_spend=5.0)
        with pytest.raises(InvalidRequestError):
            async for _ in client.as_completed(items, max_spend=5.0):
                pass
        results = await client.gather_generations(items, return_exceptions=True)  # no cap: it runs
    assert info.value.parameter == "max_spend"
    assert info.value.value == 5.0
    assert "#1 (MiniMax-Hailuo-02 768p 10 s) on minimax" in str(info.value)
    assert "#2" not in str(info.value)  # an invalid item fails on its own; it is not priced
    assert "prices=" in info.value.allowed
    assert [type(r).__name__ for r in results] == ["Generation", "Generation", "InvalidRequestError"]
    assert sum(gw.posts.values()) == 2  # only the uncapped run sent anything


async def test_a_client_cap_refuses_an_unpriced_single_submit_before_sending() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="apimart")  # apimart publishes no per-video price
    async with mock_client(gw, clock, max_spend=1.0) as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.generate("a cat")
    assert "#0 (MiniMax-Hailuo-02 768p 5 s) on apimart" in str(info.value)
    assert not gw.posts


async def test_a_reported_charge_replaces_the_estimate_and_a_refunded_failure_counts_zero() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="apimart", durations=lambda p: 30.0)

    def with_cost(request: HttpRequest) -> HttpResponse:
        answer = gw(request)
        body = msgspec.json.decode(answer.body)
        if request.route == "status" and body["data"]["status"] == "completed":
            body["data"]["cost"] = 0.2928
            return _json(body)
        return answer

    prices = {"apimart": {HAILUO_02: {"768p": {5: 0.25}}}}
    async with mock_client(gw, clock, with_cost, prices=prices) as client:
        results = await client.gather_generations(["fine", "please FAIL"], return_exceptions=True, max_spend=0.5)
        stats = client.statistics()
    video = results[0]
    assert isinstance(video, Generation)
    assert (video.cost, video.estimated_cost, video.charged, video.charge_is_estimate) == (0.2928, 0.25, 0.2928, False)
    assert isinstance(results[1], HailuoError) and not over_budget(results[1])
    assert (stats.spent, stats.spent_estimated, stats.unpriced) == (0.2928, 0.0, 0)


async def test_the_journal_keeps_the_estimate(tmp_path: Path) -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 30.0)
    journal = tmp_path / "batch.sqlite"
    async with mock_client(gw, clock, journal=journal) as client:
        await client.gather_generations(["a", "b"])
    opened = Journal(journal).open_sync(readonly=True)
    try:
        assert [(item.state, item.estimated_cost, item.cost) for item in opened.items()] == [
            ("completed", 0.28, None),
            ("completed", 0.28, None),
        ]
    finally:
        opened.close_sync()
    async with mock_client(gw, clock, journal=journal) as client:
        again = await client.gather_generations(["a", "b"])
    assert [g.estimated_cost for g in again if isinstance(g, Generation)] == [0.28, 0.28]
    assert sum(gw.posts.values()) == 2  # resumed from the journal: nothing sent twice


async def test_statistics_without_prices_count_tasks_apart() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="apimart", durations=lambda p: 30.0)
    async with mock_client(gw, clock) as client:
        await client.gather_generations(["a", "b"])
        stats = client.statistics()
    assert (stats.spent, stats.spent_estimated, stats.unpriced, stats.max_spend) == (0.0, 0.0, 2, None)
