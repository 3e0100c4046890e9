"""Completion by webhook, end to end on loopback: the simulator calls back like each provider (apimart's status
body, toapis's signed events, MiniMax's challenge and state changes) to the client's own server, or to the user's
web app through ``handle_webhook``; the poller stays the safety net when deliveries are lost."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest
from aiohttp import web

from hailuo_async import (
    BadRequestError,
    Generation,
    HailuoClient,
    InvalidRequestError,
    PollPolicy,
    RetryPolicy,
    Webhook,
)
from hailuo_async.simulator import Simulator, SimulatorConfig

from ..conftest import SECRET

pytestmark = pytest.mark.anyio

PROVIDERS = ("apimart", "toapis", "minimax")
SIGNING = "whsec-test-signing-secret"
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.2, rate_limit_default=0.2, lookup_delay=0.1)


def config(**webhooks: object) -> SimulatorConfig:
    return SimulatorConfig.from_json(
        {
            "generation": {"kind": "uniform", "low": 0.3, "high": 0.8},
            "video_bytes": 4096,
            "webhooks": {"toapis_secret": SIGNING, "retry_delays": [0.2], "timeout": 2.0, **webhooks},
        }
    )


def client(sim: Simulator, provider: str, webhook: Webhook, **options: object) -> HailuoClient:
    return HailuoClient(
        provider,
        api_key=SECRET,
        base_url=getattr(sim.urls, provider),
        poll=PollPolicy(max_lag=0.2, deadline=60),
        retry=FAST_RETRY,
        submits_per_minute=None,
        webhook=webhook,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_results_arrive_by_webhook_with_few_status_requests(provider: str) -> None:
    async with Simulator(config()) as sim:
        hook = Webhook(listen="127.0.0.1:0", secret=SIGNING, fallback_lag=30.0)
        async with client(sim, provider, hook) as hailuo:
            results = await hailuo.gather_generations([f"webhook {provider} {i}" for i in range(8)])
            stats = hailuo.statistics()
        assert all(isinstance(result, Generation) and result.video_url for result in results)
        sent = sim.stats()
    assert sent.webhooks_delivered >= 8
    # apimart's delivery is the whole status answer: no status request at all; toapis and MiniMax say only that
    # the task ended: one status request each for the URL (MiniMax: then files/retrieve).
    assert stats.status_requests <= (0 if provider == "apimart" else 8), stats


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_delivery_lost_the_poller_still_finishes_the_batch(provider: str) -> None:
    async with Simulator(config(drop=1.0)) as sim:
        hook = Webhook(listen="127.0.0.1:0", secret=SIGNING, fallback_lag=0.5)
        async with client(sim, provider, hook) as hailuo:
            results = await hailuo.gather_generations([f"lost {provider} {i}" for i in range(6)])
        assert all(isinstance(result, Generation) for result in results)
        stats = sim.stats()
    assert stats.webhooks_dropped >= 6 and stats.webhooks_delivered == 0


async def test_forged_toapis_deliveries_change_nothing() -> None:
    # The simulator signs with a secret the client does not know: every delivery is refused (401), and the batch
    # completes through the safety-net polling alone.
    async with Simulator(config()) as sim:
        hook = Webhook(listen="127.0.0.1:0", secret="another-secret", fallback_lag=0.5)
        async with client(sim, "toapis", hook) as hailuo:
            results = await hailuo.gather_generations(["forged 1", "forged 2"])
            polled = hailuo.statistics().status_requests
        assert all(isinstance(result, Generation) for result in results)
        stats = sim.stats()
    assert stats.webhooks_failed >= 2 and polled >= 2


async def test_a_failed_minimax_challenge_creates_nothing_and_is_not_retried() -> None:
    # Nobody listens where the callback URL points: MiniMax cannot check it, refuses the create (2013) and no task
    # exists; the client reports a BadRequestError and sends the submit once.
    async with Simulator(config(challenge_timeout=0.5)) as sim:
        hook = Webhook(public_url="http://127.0.0.1:9/nobody", fallback_lag=0.5)
        async with client(sim, "minimax", hook) as hailuo:
            with pytest.raises(BadRequestError) as caught:
                await hailuo.generate("challenge refused")
        stats = sim.stats()
    assert "callback" in str(caught.value).lower()
    assert stats.submits_by_prompt == {"challenge refused": 1} and stats.tasks_created == 0


async def own_app(holder: dict[str, HailuoClient]) -> web.AppRunner:
    """A user's own aiohttp app on 127.0.0.1 that hands every request to ``holder["client"].handle_webhook``."""

    async def receive(request: web.Request) -> web.Response:
        reply = await holder["client"].handle_webhook(
            request.method, request.path_qs, dict(request.headers), await request.read()
        )
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_deliveries_through_the_users_own_web_app() -> None:
    # No listener of the client's own: the user's aiohttp app receives the deliveries and hands them in.
    holder: dict[str, HailuoClient] = {}
    runner = await own_app(holder)
    port = runner.addresses[0][1]
    try:
        async with Simulator(config()) as sim:
            hook = Webhook(public_url=f"http://127.0.0.1:{port}", fallback_lag=30.0)
            async with client(sim, "minimax", hook) as hailuo:
                holder["client"] = hailuo
                video = await hailuo.generate("own app")
            assert isinstance(video, Generation)
            assert sim.stats().webhook_challenges >= 1
    finally:
        await runner.cleanup()


async def test_handle_webhook_needs_a_webhook_and_the_secret_stays_out_of_reprs() -> None:
    async with HailuoClient("apimart", api_key=SECRET, base_url="http://127.0.0.1:9") as hailuo:
        with pytest.raises(InvalidRequestError):
            await hailuo.handle_webhook("POST", "/hailuo/x", {}, b"{}")
    hook = Webhook(listen="127.0.0.1:0", secret=SIGNING)
    assert SIGNING not in repr(hook)
    assert msgspec.structs.replace(hook, fallback_lag=1.0).fallback_lag == 1.0
    with pytest.raises(InvalidRequestError, match="fallback_lag"):
        Webhook(listen="127.0.0.1:0", fallback_lag=0)
    await anyio.lowlevel.checkpoint()


async def test_an_earlier_runs_delivery_is_journaled_and_resume_needs_no_status_request(tmp_path: Path) -> None:
    # Run 1 gives up waiting; the tasks end while run 2's client (same journal, same fixed token, same web app) is
    # open: their deliveries are recorded, and resuming the batch then sends no status request at all.
    holder: dict[str, HailuoClient] = {}
    runner = await own_app(holder)
    hook = Webhook(
        public_url=f"http://127.0.0.1:{runner.addresses[0][1]}", token="a-fixed-token-of-run-one", fallback_lag=60.0
    )
    journal = tmp_path / "batch.sqlite"
    prompts = ["earlier one", "earlier two"]
    slow = SimulatorConfig.from_json(
        {
            "generation": {"kind": "uniform", "low": 1.0, "high": 1.2},
            "video_bytes": 4096,
            "webhooks": {"retry_delays": []},
        }
    )
    try:
        async with Simulator(slow) as sim:
            async with client(sim, "apimart", hook, journal=journal) as first:
                holder["client"] = first
                gave_up = await first.gather_generations(prompts, return_exceptions=True, timeout=0.2)
            assert all(not isinstance(result, Generation) for result in gave_up)
            async with client(sim, "apimart", hook, journal=journal) as second:
                holder["client"] = second
                with anyio.fail_after(10):
                    while any(item.state != "completed" for item in second.journal.items()):  # type: ignore[union-attr]
                        await anyio.sleep(0.05)
                resumed = await second.gather_generations(prompts)
                assert all(isinstance(result, Generation) and result.video_url for result in resumed)
                assert second.statistics().status_requests == 0
            assert sim.stats().submits_by_prompt == dict.fromkeys(prompts, 1)
    finally:
        await runner.cleanup()
