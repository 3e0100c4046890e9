"""Engine tests on the mock transport and a fake clock: scheduling, polling, money safety, batches."""

from __future__ import annotations

import logging
import random
import statistics
from collections.abc import Iterator

import anyio
import pytest

from hailuo_async import (
    BatchError,
    ConnectError,
    FakeClock,
    Generation,
    GenerationFailedError,
    GenerationRequest,
    GenerationTimeoutError,
    HailuoClient,
    HttpRequest,
    HttpResponse,
    InsufficientBalanceError,
    InvalidRequestError,
    ItemEvent,
    MockTransport,
    NotSubmittedError,
    PollPolicy,
    RetryPolicy,
    SubmissionUncertainError,
    TransportError,
)

from .fakegw import FakeGateway, _json, rate_limited

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.01)


def make_client(gw: FakeGateway, clock: FakeClock, **options: object) -> HailuoClient:
    return HailuoClient(
        gw.provider,
        api_key="k",
        transport=MockTransport(gw),
        clock=clock,
        retry=FAST_RETRY,
        **options,  # type: ignore[arg-type]
    )


async def test_generate_one_task_few_checks_prompt_detection() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 120.0)
    async with make_client(gw, clock) as client:
        video = await client.generate("A cat on the grass", duration=5, resolution="768P")
    assert isinstance(video, Generation)
    assert video.video_url == "https://cdn.example/t1.mp4"
    assert video.request.resolution == "768p"
    task = gw.tasks["t1"]
    # A 2 s fixed-interval poller makes 60. Alone, with no finished task to learn from, the poller reads the task's
    # estimate and its pace through wide priors: each check skips only what they rule out, and only where that saves
    # a check (near its end, where the priors rule out little, it is polled on the beat).
    assert task.checks <= 24, gw.status_times
    lag = gw.status_times[-1] - gw.true_end("t1")
    assert 0 <= lag <= 2.0


async def test_many_tasks_few_requests_and_prompt_detection() -> None:
    random.seed(7)  # the poller jitters its checks with the random module: make the run repeatable
    rng = random.Random(7)
    clock = FakeClock()
    durations = {f"p{i}": rng.uniform(30, 300) for i in range(300)}
    gw = FakeGateway(clock, durations=lambda p: durations[p], estimate_error=lambda t: t * rng.uniform(0.7, 1.3))
    async with make_client(gw, clock, max_concurrency=50) as client:
        results = await client.gather_generations(list(durations))
    assert all(isinstance(r, Generation) for r in results)
    checks = [t.checks for t in gw.tasks.values()]
    lags = sorted(t.completed_seen_at - (t.created + t.duration) for t in gw.tasks.values() if t.completed_seen_at)
    # A 2 s fixed-interval poller would need ~83 checks per task here, for a p95 lag of 1.9 s. (About 14: until tasks
    # of their scale finish, long tasks read their estimate through a prior that allows it 6-7 times too long.)
    assert statistics.mean(checks) <= 15, statistics.mean(checks)
    assert lags[int(0.95 * len(lags))] <= 2.0, lags[-10:]  # max_lag, the contract


@pytest.mark.parametrize(
    ("seed", "slow", "fast", "count", "settle"),
    [
        pytest.param(11, (15.0, 30.0), (5.0, 10.0), 300, 20, id="15-30 s then 5-10 s"),
        pytest.param(3, (150.0, 300.0), (50.0, 100.0), 200, 100, id="150-300 s then 50-100 s"),
    ],
)
async def test_a_provider_that_gets_faster_mid_batch_is_noticed_from_the_checks_themselves(
    seed: int, slow: tuple[float, float], fast: tuple[float, float], count: int, settle: int
) -> None:
    # MiniMax (no progress, no estimate: only the batch's durations to go by), its 20 submits a minute: the first
    # 100 tasks are slow, the rest three times as fast. Learned from the first, the durations say a new task cannot
    # end for a while, and its first check goes there (at most max_interval, 60 s, out): found long after it ended,
    # until the 2 % audited at random told (15-30 s then 5-10 s: p95 9 s). With tasks ten times as long, most fast
    # ones outlived that first check and waited another 60 s (p95 38 s). The checks aimed from that forecast keep
    # finding tasks ended when it gave them a few percent: each such find shortens how far its checks reach and
    # brings in those already aimed; within a few tasks it is not used, the checks aimed from it are planned again,
    # and the batch's fast durations take over.
    random.seed(seed)
    rng = random.Random(seed)
    clock = FakeClock(settle=settle)  # 100: enough turns for every due check to go out before the clock jumps
    durations = {f"p{i}": rng.uniform(*slow) if i < 100 else rng.uniform(*fast) for i in range(count)}
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: durations[p])
    async with make_client(gw, clock) as client:
        results = await client.gather_generations(list(durations))
    assert all(isinstance(r, Generation) for r in results)
    lags = sorted(t.completed_seen_at - (t.created + t.duration) for t in gw.tasks.values() if t.completed_seen_at)
    assert len(lags) == count
    assert lags[int(0.95 * len(lags))] <= 2.0, lags[-20:]


async def test_minimax_retrieves_the_url_and_maps_failures() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 30.0)
    async with make_client(gw, clock, submits_per_minute=None) as client:
        results = await client.gather_generations(["ok", "FAIL please"], return_exceptions=True)
    assert isinstance(results[0], Generation)
    assert results[0].video_url == "https://cdn.example/901.mp4"
    assert isinstance(results[1], GenerationFailedError)
    assert results[1].code == 1027 and results[1].task_id == "t2"


async def test_status_429_pauses_every_status_check() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 40.0)
    fired: list[float] = []

    def once_429(request: HttpRequest) -> HttpResponse | None:
        if request.route == "status" and not fired and clock.monotonic() > 1_010:
            fired.append(clock.monotonic())
            return rate_limited("3")
        return None

    gw.faults.append(once_429)
    async with make_client(gw, clock, max_concurrency=20) as client:
        results = await client.gather_generations([f"p{i}" for i in range(20)])
        stats = client.statistics()
    assert all(isinstance(r, Generation) for r in results)
    assert fired and stats.rate_limited == 1
    paused = [t for t in gw.status_times if fired[0] < t < fired[0] + 3.0]
    assert paused == []


async def test_deadline_gives_timeout_and_no_resubmit() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 10_000.0)
    async with make_client(gw, clock) as client:
        task = await client.submit("never ends")
        with pytest.raises(GenerationTimeoutError) as info:
            await client.wait(task, timeout=300)
    assert info.value.task_id == task.task_id
    assert 299 <= info.value.waited <= 301
    assert sum(gw.posts.values()) == 1
    checks_at_timeout = gw.tasks["t1"].checks
    assert checks_at_timeout < 40


async def test_unknown_status_words_keep_polling_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    gw = FakeGateway(clock)
    async with make_client(gw, clock) as client:
        task = await client.submit("odd words")
        gw.tasks[task.task_id].words = ["moderation_pending", "moderation_pending", "moderation_pending", "completed"]
        with caplog.at_level(logging.WARNING, logger="hailuo_async"):
            video = await client.wait(task)
        assert video.task_id == task.task_id
        stuck = await client.submit("only odd words")
        gw.tasks[stuck.task_id].words = ["moderation_pending"]
        with pytest.raises(GenerationTimeoutError):
            await client.wait(stuck, timeout=120)
    warnings = [r for r in caplog.records if "moderation_pending" in r.getMessage()]
    assert len(warnings) == 1


async def test_submit_retries_only_when_never_sent() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider="minimax", durations=lambda p: 5.0)
    refusals = [0]

    def refuse_twice(request: HttpRequest) -> HttpResponse | None:
        if request.route == "submit" and refusals[0] < 2:
            refusals[0] += 1
            raise ConnectError("refused (simulated)")
        return None

    gw.faults.append(refuse_twice)
    async with make_client(gw, clock, submits_per_minute=None) as client:
        video = await client.generate("retry me")
        assert client.statistics().retries >= 2
    assert video.task_id == "t1"
    assert gw.posts["retry me"] == 1


@pytest.mark.parametrize("provider", ["minimax", "apimart"])
async def test_submit_dropped_after_delivery(provider: str) -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, provider=provider, durations=lambda p: 5.0)
    drops = [0]

    def create_then_drop(request: HttpRequest) -> HttpResponse | None:
        if request.route == "submit" and drops[0] == 0:
            drops[0] += 1
            gw(request)  # the provider creates the task...
            raise TransportError("server disconnected (simulated)", maybe_sent=True)  # ...and the answer is lost
        return None

    gw.faults.insert(0, create_then_drop)
    async with make_client(gw, clock, submits_per_minute=None) as client:
        if provider == "minimax":
            with pytest.raises(SubmissionUncertainError) as info:
                await client.submit("paid once")
            assert info.value.request.prompt == "paid once"
            assert client.statistics().uncertain == 1
            assert gw.posts["paid once"] == 1  # never a blind second POST
        else:
            task = await client.submit("paid once")  # apimart: resent with the same Idempotency-Key
            assert task.idempotency_key is not None
            keys = set(gw.idempotency_keys)
            assert keys == {task.idempotency_key}
            assert gw.posts["paid once"] == 2


async def test_insufficient_balance_stops_the_batch_early() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 20.0)
    submitted: list[str] = []

    def broke_after_three(request: HttpRequest) -> HttpResponse | None:
        if request.route != "submit":
            return None
        if len(submitted) >= 3:
            return _json({"error": {"code": 402, "message": "insufficient balance", "type": "payment_required"}}, 402)
        submitted.append("x")
        return None

    gw.faults.append(broke_after_three)
    transport = MockTransport(gw)
    async with HailuoClient("apimart", api_key="k", transport=transport, clock=clock, max_concurrency=1) as client:
        results = await client.gather_generations([f"item {i}" for i in range(10)], return_exceptions=True)
    assert all(isinstance(r, Generation) for r in results[:3])  # already paid: polled to the end
    assert isinstance(results[3], InsufficientBalanceError)
    assert all(isinstance(r, NotSubmittedError) for r in results[4:])
    assert all(
        isinstance(r, NotSubmittedError) and isinstance(r.__cause__, InsufficientBalanceError) for r in results[4:]
    )
    assert len([r for r in transport.requests if r.route == "submit"]) == 4  # items 5..10 never sent


async def test_gather_raises_batch_error_after_waiting_for_everything() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 15.0 if "FAIL" in p else 60.0)
    async with make_client(gw, clock) as client:
        with pytest.raises(BatchError) as info:
            await client.gather_generations(["a", "FAIL b", GenerationRequest("c", duration=10), "d"])
    results = info.value.results
    assert [type(r).__name__ for r in results] == ["Generation", "GenerationFailedError", "Generation", "Generation"]
    assert info.value.errors[0][0] == 1


async def test_invalid_items_fail_alone_without_requests() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 5.0)
    async with make_client(gw, clock) as client:
        results = await client.gather_generations(
            ["fine", GenerationRequest("six", duration=6), "[Dolly zoom] no", "also fine"], return_exceptions=True
        )
    assert isinstance(results[0], Generation) and isinstance(results[3], Generation)
    assert isinstance(results[1], InvalidRequestError) and results[1].parameter == "duration"
    assert sum(gw.posts.values()) == 2


async def test_input_is_consumed_lazily() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 5.0)
    pulled: list[int] = []

    def prompts() -> Iterator[str]:
        for i in range(200):
            pulled.append(i)
            submitted = sum(gw.posts.values())
            assert i - submitted <= 4 + 1, (i, submitted)  # never far ahead of the submits
            yield f"p{i}"

    async with make_client(gw, clock, max_concurrency=4) as client:
        results = await client.gather_generations(prompts())
    assert len(results) == 200 and len(pulled) == 200


async def test_events_and_as_completed() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: {"slow": 90.0, "fast": 10.0}[p])
    events: list[ItemEvent] = []
    async with make_client(gw, clock) as client:
        order = [index async for index, _ in client.as_completed(["slow", "fast"], on_event=events.append)]
    assert order == [1, 0]
    kinds = {(e.index, e.kind) for e in events}
    assert {(0, "submitting"), (0, "submitted"), (0, "completed"), (1, "completed")} <= kinds
    assert any(e.kind == "running" and e.progress is not None for e in events)


async def test_cancelling_a_batch_leaves_nothing_running() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 600.0)
    async with make_client(gw, clock, max_concurrency=3) as client:
        with anyio.CancelScope() as scope:

            def cancel_after_ten(event: ItemEvent) -> None:
                if event.kind == "submitted" and event.index is not None and event.index >= 10:
                    scope.cancel()

            await client.gather_generations([f"p{i}" for i in range(1000)], on_event=cancel_after_ten)
        assert scope.cancel_called
        stats = client.statistics()
        assert stats.polling == 0  # the abandoned batch's tasks are no longer polled
        posted = sum(gw.posts.values())
        assert 0 < posted < 1000
    assert sum(gw.posts.values()) == posted


async def test_client_lifecycle_rules() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock)
    client = make_client(gw, clock)
    with pytest.raises(RuntimeError, match="not open"):
        await client.submit("x")
    async with client:
        pass
    with pytest.raises(RuntimeError, match="cannot be reopened"):
        async with client:
            pass
    assert "k" not in repr(client).replace("api_key", "")


def test_client_builds_outside_a_loop_and_validates_options() -> None:
    client = HailuoClient("toapis", api_key="k")
    assert client.base_url == "https://toapis.com"
    with pytest.raises(InvalidRequestError, match="max_concurrency"):
        HailuoClient("toapis", api_key="k", max_concurrency=0)
    with pytest.raises(InvalidRequestError, match="https is required"):
        HailuoClient("toapis", api_key="k", base_url="http://gateway.example")
    assert HailuoClient("toapis", api_key="k", base_url="http://gateway.example", allow_insecure_http=True)
    assert (
        HailuoClient("toapis", api_key="k", base_url="http://127.0.0.1:9/prefix/").base_url
        == "http://127.0.0.1:9/prefix"
    )
    with pytest.raises(InvalidRequestError, match="TOAPIS_API_KEY"):
        HailuoClient("toapis")


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAILUO_API_KEY", "generic")
    assert "generic" not in repr(HailuoClient("minimax"))
    monkeypatch.setenv("MINIMAX_API_KEY", "specific")
    client = HailuoClient("minimax")
    assert client.transport is not None
    with pytest.raises(InvalidRequestError, match="provider"):
        HailuoClient("nope", api_key="k")


async def test_fixed_rate_spaces_requests() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 30.0)
    async with make_client(gw, clock, requests_per_second=2.0, max_concurrency=10) as client:
        await client.gather_generations([f"p{i}" for i in range(10)])
    times = sorted(gw.status_times)
    for a, b in zip(times, times[3:], strict=False):
        assert b - a >= 1.0 - 1e-6  # never more than 2 per second (3 intervals of 0.5 s)


async def test_poll_policy_validation() -> None:
    with pytest.raises(InvalidRequestError):
        PollPolicy(min_interval=0)
    with pytest.raises(InvalidRequestError):
        PollPolicy(min_interval=10, max_interval=5)
