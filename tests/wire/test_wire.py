"""Wire tests: the real client and AiohttpTransport against the built-in simulator on loopback."""

from __future__ import annotations

import collections
from pathlib import Path

import anyio
import pytest

from hailuo_async import (
    AuthenticationError,
    BatchError,
    Generation,
    GenerationFailedError,
    GenerationRequest,
    GenerationTimeoutError,
    HailuoClient,
    HailuoError,
    InsufficientBalanceError,
    InvalidRequestError,
    ItemEvent,
    NotSubmittedError,
    PollPolicy,
    RetryPolicy,
    SubmissionUncertainError,
    Timeouts,
)
from hailuo_async.simulator import Faults, RateLimit, Simulator, SimulatorConfig

from ..conftest import SECRET

pytestmark = pytest.mark.anyio

FAST_POLL = PollPolicy(max_lag=0.1, min_interval=0.05, max_interval=1.0, deadline=60)
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.2, rate_limit_default=0.2, lookup_delay=0.1)
PROVIDERS = ("apimart", "toapis", "minimax")


def client_for(sim: Simulator, provider: str, **options: object) -> HailuoClient:
    settings: dict[str, object] = {
        "api_key": SECRET,
        "base_url": getattr(sim.urls, provider),
        "poll": FAST_POLL,
        "retry": FAST_RETRY,
        "submits_per_minute": None,
    }
    settings.update(options)
    return HailuoClient(provider, **settings)  # type: ignore[arg-type]


def config(**changes: object) -> SimulatorConfig:
    base = SimulatorConfig.from_json({"generation": {"kind": "uniform", "low": 0.2, "high": 0.6}, "video_bytes": 4096})
    return base if not changes else __import__("msgspec").structs.replace(base, **changes)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_generate_and_download_each_provider(sim: Simulator, provider: str, tmp_path: Path) -> None:
    async with client_for(sim, provider) as client:
        prompt = "A lighthouse at dusk [Push in]"
        video = await client.generate(prompt, duration=10, resolution="768p", download_to=tmp_path)
    assert isinstance(video, Generation)
    assert video.provider == provider and video.video_url.startswith(sim.urls.cdn)
    assert video.path is not None
    data = Path(video.path).read_bytes()
    assert data[4:8] == b"ftyp" and len(data) == 4096
    assert Path(video.path).parent == tmp_path
    stats = sim.stats()
    assert stats.submits_by_prompt == {prompt: 1}
    assert stats.cdn_requests >= 1 and stats.cdn_requests_with_credentials == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_failures_and_deadlines(sim: Simulator, provider: str) -> None:
    async with client_for(sim, provider) as client:
        results = await client.gather_generations(
            ["fine", "please {{sim:fail}}", "slow {{sim:hang}}"], return_exceptions=True, timeout=1.5
        )
    assert isinstance(results[0], Generation)
    assert isinstance(results[1], GenerationFailedError) and results[1].task_id
    assert isinstance(results[2], GenerationTimeoutError)
    assert sim.stats().tasks_created == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_drift_shapes_decode(provider: str) -> None:
    async with Simulator(config(drift=True)) as sim, client_for(sim, provider) as client:
        results = await client.gather_generations([f"drift {i}" for i in range(12)])
    assert all(isinstance(r, Generation) and r.video_url for r in results)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_chaos_batch_nothing_lost_nothing_doubled(provider: str) -> None:
    faults = Faults(error_5xx=0.05, drop=0.03, malformed=0.03, submit_then_drop=0.03)
    cfg = config(faults=faults, rate_limit=RateLimit(rate=150.0, burst=20.0), seed=3)
    n = 167  # x 3 providers: 500 items through every fault at once
    async with Simulator(cfg) as sim:
        async with client_for(sim, provider, max_concurrency=24) as client:
            with anyio.fail_after(90):
                results = await client.gather_generations(
                    [f"chaos {provider} {i}" for i in range(n)], return_exceptions=True
                )
            stats = client.statistics()
        sim_stats = sim.stats()
    assert len(results) == n
    assert all(isinstance(r, (Generation, HailuoError)) for r in results)
    kinds = collections.Counter(type(r).__name__ for r in results)
    assert kinds["Generation"] >= n * 0.75, kinds
    created = sim_stats.tasks_created_by_prompt
    if provider == "apimart":
        # Resent submits carry the same Idempotency-Key: at most one task per prompt.
        assert max(created.values()) == 1
    else:
        # Never a second POST after one that may have been delivered.
        assert max(sim_stats.submits_by_prompt.values()) == 1 or all(count == 1 for count in created.values()), (
            sim_stats.submits_by_prompt
        )
        assert max(created.values()) == 1
        if provider == "toapis":
            # A lost answer is looked up by client_business_id instead of given up on; only an item whose every
            # send (the first and two resends) met a fault stays uncertain (about 0.3% of items here).
            assert kinds["SubmissionUncertainError"] <= 3, kinds
            assert sim_stats.client_id_lookups >= 1
        else:
            assert kinds["SubmissionUncertainError"] >= 1
    assert stats.submitting == 0 and stats.polling == 0


async def test_submit_then_drop_with_and_without_idempotency() -> None:
    cfg = config(faults=Faults(submit_then_drop=1.0))
    async with Simulator(cfg) as sim:
        async with client_for(sim, "minimax") as client:
            with pytest.raises(SubmissionUncertainError) as info:
                await client.submit("paid once")
        assert info.value.request.prompt == "paid once"
        assert sim.stats().submits_by_prompt == {"paid once": 1}
        async with client_for(sim, "toapis") as client:
            found = await client.submit("looked up")  # the answer is lost; the task is found by its client id
        assert sim.stats().submits_by_prompt["looked up"] == 1
        assert sim.task(found.task_id).prompt == "looked up"
        async with client_for(sim, "apimart") as client:
            task = await client.submit("keyed")  # the answer is lost; the resend with the same key is replayed
        stats = sim.stats()
        assert stats.submits_by_prompt["keyed"] == 2
        assert stats.tasks_created_by_prompt["keyed"] == 1
        assert sim.task(task.task_id).idempotency_key == task.idempotency_key
        sim.update_config(faults=Faults())
        async with client_for(sim, "apimart") as client:
            task = await client.submit("keyed again")
            assert sim.stats().tasks_created_by_prompt["keyed again"] == 1
            assert task.idempotency_key


@pytest.mark.parametrize(("field", "error"), [("keys", AuthenticationError), ("credits", InsufficientBalanceError)])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_auth_and_balance_stop_batch(provider: str, field: str, error: type[HailuoError]) -> None:
    cfg = config(keys=(SECRET,)) if field == "keys" else config(credits=3)
    async with Simulator(cfg) as sim:
        key = "sk-wrong" if field == "keys" else SECRET
        async with client_for(sim, provider, api_key=key, max_concurrency=1) as client:
            results = await client.gather_generations([f"item {i}" for i in range(8)], return_exceptions=True)
        stats = sim.stats()
    if field == "credits":
        assert all(isinstance(r, Generation) for r in results[:3])
        assert isinstance(results[3], error)
        assert all(isinstance(r, NotSubmittedError) for r in results[4:])
        assert sum(stats.submits_by_prompt.values()) == 4
    else:
        assert isinstance(results[0], error)
        assert all(isinstance(r, NotSubmittedError) for r in results[1:])
        assert sum(stats.submits_by_prompt.values()) <= 1
    for result in results:
        assert SECRET not in repr(result) and SECRET not in str(result)


async def test_rate_limit_is_learned_and_respected() -> None:
    cfg = config(rate_limit=RateLimit(rate=40.0, burst=5.0))
    async with Simulator(cfg) as sim, client_for(sim, "apimart", max_concurrency=16) as client:
        results = await client.gather_generations([f"limited {i}" for i in range(40)])
        stats = client.statistics()
    assert all(isinstance(r, Generation) for r in results)
    assert stats.rate_limited >= 1 and stats.rate_limit is not None
    # The requests in flight when the first 429 arrives are refused together; after that, 429s are rare.
    assert stats.rate_limited <= 16 + 3, (stats.rate_limited, stats.requests)
    # 429-refused submits reach the server but create nothing; every prompt made exactly one task.
    assert sim.stats().tasks_created_by_prompt == {f"limited {i}": 1 for i in range(40)}


async def test_bounded_concurrency() -> None:
    cfg = config(faults=Faults(latency=0.05))
    async with Simulator(cfg) as sim, client_for(sim, "toapis", max_concurrency=4) as client:
        await client.gather_generations([f"c {i}" for i in range(24)])
        max_seen = sim.stats().max_concurrent_requests
    # At most 4 submits plus the poller's status checks (status_concurrency=16) in flight.
    assert max_seen <= 4 + FAST_POLL.status_concurrency


async def test_cancellation_closes_everything(sim: Simulator) -> None:
    client = client_for(sim, "apimart", max_concurrency=2)
    async with client:
        with anyio.CancelScope() as scope:

            def stop_after_five(event: ItemEvent) -> None:
                if event.kind == "submitted" and event.index is not None and event.index >= 5:
                    scope.cancel()

            await client.gather_generations(
                [f"cancel {i} {{{{sim:hang}}}}" for i in range(50)], on_event=stop_after_five
            )
        assert client.statistics().polling == 0
    assert client.transport.closed  # type: ignore[attr-defined]
    assert sum(sim.stats().submits_by_prompt.values()) < 50


async def test_invalid_requests_send_nothing(sim: Simulator) -> None:
    async with client_for(sim, "toapis") as client:
        with pytest.raises(InvalidRequestError, match="duration"):
            await client.submit("x", duration=5)
        with pytest.raises(InvalidRequestError, match="toapis takes"):
            await client.submit(GenerationRequest("x", first_frame="data:image/png;base64,AAAA"))
        with pytest.raises(BatchError):
            await client.gather_generations([GenerationRequest("y", resolution="1080p", duration=10)])
    assert sim.stats().requests_by_route.get("toapis.submit", 0) == 0


async def test_apimart_submit_still_processing_is_waited_for_not_paid_twice() -> None:
    # The first POST's answer is slower than our read timeout; the resend under the same Idempotency-Key finds it
    # still in progress (409 idempotency_in_progress, Retry-After) and waits, then gets the first answer replayed.
    async with Simulator(config(submit_delay=1.0)) as sim:
        async with client_for(sim, "apimart", timeouts=Timeouts(read=0.4)) as client:
            task = await client.submit("slow to accept")
        stats = sim.stats()
        assert sim.task(task.task_id).idempotency_key == task.idempotency_key
    assert stats.tasks_created_by_prompt == {"slow to accept": 1}
    assert stats.submits_by_prompt["slow to accept"] >= 2
