"""The reliability checklist (docs/reliability.md, section 8) that other modules do not already cover.

Items covered elsewhere: 1, 12, 16, 17 (test_engine), 3, 8, 13, 19 (test_wire), 9, 27 (test_durable),
18 (test_providers), 22-24 (test_download, test_engine), 28 (test_exports and conftest); docs/reliability.md, 8
lists every item with its tests. Here: real aiohttp against fake gateways on loopback for the wire-level items,
the mock transport and a fake clock for the scheduling ones.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hailuo_async import (
    AiohttpTransport,
    AuthenticationError,
    BatchError,
    ConnectError,
    DecodeError,
    FakeClock,
    Generation,
    HailuoClient,
    HailuoError,
    HttpRequest,
    InsufficientBalanceError,
    ItemEvent,
    Journal,
    MockTransport,
    PollPolicy,
    RateLimitError,
    ReadTimeoutError,
    RetryPolicy,
    ServerError,
    SubmissionUncertainError,
    SystemClock,
    Timeouts,
    UnexpectedRedirectError,
)
from hailuo_async.simulator import Faults, Simulator, SimulatorConfig

from ..conftest import SECRET
from .fakegw import FakeGateway, _json

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05, rate_limit_default=0.1)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[TestServer]]]:
    """Start aiohttp servers on 127.0.0.1 answering every path with a handler."""
    servers: list[TestServer] = []

    async def start(handler: Handler) -> TestServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def minimax_ok(task_id: str = "1001") -> web.Response:
    return web.json_response({"task_id": task_id, "base_resp": {"status_code": 0, "status_msg": "success"}})


# 2. A submit whose answer times out after the server read it: unknown outcome, never resent.
async def test_read_timeout_after_delivery_is_uncertain_and_not_resent(
    serve: Callable[[Handler], Awaitable[TestServer]],
) -> None:
    posts: list[bytes] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        posts.append(await request.read())  # the task is created here...
        await asyncio.sleep(1.0)  # ...and the answer comes too late
        return minimax_ok()

    server = await serve(slow)
    client = HailuoClient(
        "minimax",
        api_key=SECRET,
        base_url=str(server.make_url("")),
        timeouts=Timeouts(read=0.3),
        retry=FAST_RETRY,
        submits_per_minute=None,
    )
    async with client:
        with pytest.raises(SubmissionUncertainError) as info:
            await client.submit("paid")
    assert isinstance(info.value.__cause__, ReadTimeoutError)
    await anyio.sleep(0.8)
    assert len(posts) == 1


# 4. Failures before anything is sent are retried: a port that opens late gets exactly one task.
async def test_connection_refused_is_retried_until_the_server_is_up() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    posts: list[str] = []

    async def create(request: web.Request) -> web.StreamResponse:
        posts.append((await request.json())["prompt"])
        return minimax_ok()

    app = web.Application()
    app.router.add_post("/v1/video_generation", create)
    runner = web.AppRunner(app)
    await runner.setup()
    retries: list[int] = []

    async def open_later() -> None:
        await anyio.sleep(0.3)
        await web.TCPSite(runner, "127.0.0.1", port).start()

    client = HailuoClient(
        "minimax",
        api_key=SECRET,
        base_url=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(base_delay=0.1, max_delay=0.2, max_attempts=10),
        submits_per_minute=None,
    )
    try:
        async with anyio.create_task_group() as tg, client:
            tg.start_soon(open_later)
            task = await client.submit("late server")
            retries.append(client.statistics().retries)
    finally:
        await runner.cleanup()
    assert task.task_id == "1001"
    assert posts == ["late server"]
    assert retries[0] >= 1  # connection refused, retried, then exactly one task


# 5. The transport tells "never sent" from "maybe delivered".
async def test_transport_classifies_never_sent_and_maybe_sent(
    serve: Callable[[Handler], Awaitable[TestServer]],
) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # read it all, answer nothing
        return web.Response()

    server = await serve(drop)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    request = HttpRequest(method="POST", path="/v1/video_generation", route="submit", body=b"{}")
    for base, expected_sent in ((f"http://127.0.0.1:{closed_port}", False), (str(server.make_url("")), True)):
        transport = AiohttpTransport(base, SECRET, timeouts=Timeouts(connect=1, read=1))
        await transport.open()
        try:
            with pytest.raises(HailuoError) as info:
                await transport.send(request)
        finally:
            await transport.aclose()
        assert getattr(info.value, "maybe_sent", None) is expected_sent, repr(info.value)
        assert isinstance(info.value, ConnectError) is (not expected_sent)
        assert SECRET not in repr(info.value)


# 6. Waiting for a pooled connection never burns a request's timeout (no "total" timeout).
async def test_pool_waits_do_not_count_against_timeouts(serve: Callable[[Handler], Awaitable[TestServer]]) -> None:
    async def slowish(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.1)
        return web.json_response({"ok": True})

    server = await serve(slowish)
    transport = AiohttpTransport(str(server.make_url("")), SECRET, timeouts=Timeouts(read=0.3), max_connections=2)
    await transport.open()
    try:
        statuses: list[int] = []

        async def one() -> None:
            response = await transport.send(HttpRequest(method="GET", path="/status", route="status"))
            statuses.append(response.status)

        async with anyio.create_task_group() as tg:
            for _ in range(20):  # 20 x 0.1 s through 2 connections: the last waits ~0.9 s, well past read=0.3
                tg.start_soon(one)
    finally:
        await transport.aclose()
    assert statuses == [200] * 20


# 7. A 429 without Retry-After still pauses everything for the default pause.
async def test_429_without_retry_after_uses_the_default_pause() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 30.0)
    hit: list[float] = []

    def once(request: HttpRequest) -> object:
        if request.route == "status" and not hit:
            hit.append(clock.monotonic())
            return _json({"error": {"code": 429, "message": "slow down", "type": "rate_limit_error"}}, 429)
        return None

    gw.faults.append(once)  # type: ignore[arg-type]
    policy = RetryPolicy(base_delay=0.001, max_delay=0.01, rate_limit_default=4.0)
    async with HailuoClient("apimart", api_key="k", transport=MockTransport(gw), clock=clock, retry=policy) as client:
        await client.gather_generations([f"p{i}" for i in range(5)])
    assert [t for t in gw.status_times if hit[0] < t < hit[0] + 4.0] == []


# 10. The task id reaches the journal even when the batch is cancelled while the POST is in flight.
async def test_task_id_is_journaled_when_cancelled_mid_submit(tmp_path: Path) -> None:
    cfg = SimulatorConfig.from_json({"generation": {"kind": "fixed", "median": 0.3}})
    cfg = msgspec.structs.replace(cfg, faults=Faults(latency=0.4, routes=frozenset({"submit"})))
    journal_path = tmp_path / "j.sqlite"
    async with Simulator(cfg) as sim:
        client = HailuoClient(
            "toapis", api_key=SECRET, base_url=sim.urls.toapis, journal=journal_path, submits_per_minute=None
        )
        async with client:
            with anyio.move_on_after(0.15):  # mid-POST: the server is still "creating" the task
                await client.gather_generations(["cancel me mid-flight"])
        assert sim.stats().tasks_created == 1
        task_id = sim.tasks[0].task_id
    journal = await Journal.open(journal_path)
    try:
        (item,) = journal.items()
        assert (item.state, item.task_id) == ("submitted", task_id)
    finally:
        await journal.aclose()


# 11. One idempotency key per item, reused on every attempt, different across items.
async def test_idempotency_keys_stable_per_item_distinct_across_items() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 5.0)
    calls: dict[str, int] = {}

    def refuse_first_two(request: HttpRequest) -> object:
        if request.route != "submit":
            return None
        prompt = msgspec.json.decode(request.body or b"{}")["prompt"]
        calls[prompt] = calls.get(prompt, 0) + 1
        if calls[prompt] <= 2:
            raise ConnectError("refused (simulated)")
        return None

    gw.faults.append(refuse_first_two)  # type: ignore[arg-type]
    transport = MockTransport(gw)
    async with HailuoClient("apimart", api_key="k", transport=transport, clock=clock, retry=FAST_RETRY) as client:
        await client.gather_generations(["one", "two"])
    keys: dict[str, set[str]] = {}
    for request in transport.requests:
        if request.route == "submit":
            prompt = msgspec.json.decode(request.body or b"{}")["prompt"]
            keys.setdefault(prompt, set()).add(dict(request.headers)["Idempotency-Key"])
    assert calls == {"one": 3, "two": 3}
    assert all(len(k) == 1 for k in keys.values())
    assert keys["one"] != keys["two"]


# 14. The shared poller respects a global rate: 200 outstanding tasks at 5 requests/s.
async def test_poller_respects_a_global_rate() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda p: 10_000.0)
    policy = PollPolicy(max_interval=30.0, deadline=None)
    async with HailuoClient(
        "apimart",
        api_key="k",
        transport=MockTransport(gw),
        clock=clock,
        poll=policy,
        requests_per_second=5.0,
        max_concurrency=50,
    ) as client:
        tasks = [await client.submit(f"p{i}") for i in range(200)]
        start = clock.monotonic()
        for task in tasks:
            client._require_open().track(task, lambda outcome: None, deadline=None)
        await clock.sleep(60.0)
    window = [t for t in gw.status_times if start <= t < start + 10.0]
    assert len(window) <= 55
    # Every task is checked at least once within initial delay + max interval, fairly (earliest due first).
    first_checks = {task_id: t.checks for task_id, t in gw.tasks.items()}
    assert all(count >= 1 for count in first_checks.values())


# 20. An API redirect is never followed: no request, and no credentials, reach the other origin.
async def test_api_redirect_is_refused(serve: Callable[[Handler], Awaitable[TestServer]]) -> None:
    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return minimax_ok()

    other = await serve(elsewhere)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(str(other.make_url("/v1/video_generation")))

    api = await serve(redirect)
    async with HailuoClient(
        "minimax", api_key=SECRET, base_url=str(api.make_url("")), submits_per_minute=None, retry=FAST_RETRY
    ) as client:
        with pytest.raises(UnexpectedRedirectError):
            await client.submit("redirected")
        with pytest.raises(UnexpectedRedirectError):
            await client.status("1001")
    assert seen == []


# 21. The key never shows: reprs, exceptions (str, repr, args, causes), logs at DEBUG.
async def test_secrets_never_leak(
    serve: Callable[[Handler], Awaitable[TestServer]], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    answers = iter(
        [
            web.json_response(
                {"error": {"code": 401, "message": "bad key", "type": "authentication_error"}}, status=401
            ),
            web.json_response(
                {"error": {"code": 402, "message": f"no credit for {SECRET}", "type": "payment_required"}}, status=402
            ),
            web.json_response({"error": {"code": 429, "message": "slow", "type": "rate_limit_error"}}, status=429),
            web.Response(status=500, text=f"<html>upstream failed Authorization: Bearer {SECRET}</html>"),
        ]
    )

    async def errors(request: web.Request) -> web.StreamResponse:
        return next(answers)

    server = await serve(errors)
    caught: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        client = HailuoClient(
            "apimart",
            api_key=SECRET,
            base_url=str(server.make_url("")),
            retry=RetryPolicy(max_attempts=1),
            journal=tmp_path / "j.sqlite",
        )
        async with client:
            for _ in range(4):
                try:
                    await client.status("task_1")
                except HailuoError as exc:
                    caught.append(exc)
            with pytest.raises(BatchError) as batch:
                await client.gather_generations(["x"])
            caught.append(batch.value)
            texts = [repr(client), repr(client.transport), repr(client.statistics()), repr(client.journal)]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with HailuoClient(
            "apimart", api_key=SECRET, base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=1)
        ) as dead:
            try:
                await dead.status("task_1")
            except HailuoError as exc:
                caught.append(exc)
    kinds = [type(e) for e in caught]
    assert kinds[:4] == [AuthenticationError, InsufficientBalanceError, RateLimitError, ServerError]
    assert isinstance(caught[-1], ConnectError)
    for error in caught:
        chain: BaseException | None = error
        while chain is not None:
            texts += [str(chain), repr(chain), repr(chain.args), repr(getattr(chain, "__dict__", {}))]
            chain = chain.__cause__ or chain.__context__
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    for text in texts:
        assert SECRET not in text
        assert SECRET[3:] not in text


# 25. A long, slow download is not cut off by any total timeout.
async def test_slow_download_is_not_cut_off(serve: Callable[[Handler], Awaitable[TestServer]], tmp_path: Path) -> None:
    payload = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4096  # ~1 MiB

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(payload)), "Content-Type": "video/mp4"})
        await response.prepare(request)
        for start in range(0, len(payload), 65536):
            await response.write(payload[start : start + 65536])
            await asyncio.sleep(0.1)  # ~1.6 s in all, far beyond the API read timeout below
        return response

    cdn = await serve(trickle)
    clock_gen = Generation(
        provider="minimax",
        task_id="slow1",
        request=__import__("hailuo_async").GenerationRequest("slow"),
        video_url=str(cdn.make_url("/video.mp4")),
        expires_at=None,
        submitted_at=0.0,
        completed_at=0.0,
    )
    async with HailuoClient(
        "minimax", api_key=SECRET, base_url="http://127.0.0.1:9", timeouts=Timeouts(read=0.2, download_read=1.0)
    ) as client:
        saved = await client.download(clock_gen, tmp_path)
    assert saved.path is not None
    assert Path(saved.path).read_bytes() == payload


# 26. API answers are read up to a cap: a huge body fails fast instead of filling memory.
async def test_huge_api_answers_are_refused(serve: Callable[[Handler], Awaitable[TestServer]]) -> None:
    async def flood(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            for _ in range(800):  # 50 MiB if anyone read it all
                await response.write(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    server = await serve(flood)
    transport = AiohttpTransport(str(server.make_url("")), SECRET)
    await transport.open()
    try:
        with pytest.raises(DecodeError, match="larger than"):
            await transport.send(HttpRequest(method="GET", path="/v1/tasks/x", route="status"))
    finally:
        await transport.aclose()


# Resources: 10,000 items through one client leave nothing behind per item (3,000 in the default run).
@pytest.mark.parametrize("count", [3_000, pytest.param(10_000, marks=pytest.mark.slow)])
async def test_many_items_leave_no_per_item_state(count: int) -> None:
    gw = FakeGateway(SystemClock(), durations=lambda p: 0.05)  # type: ignore[arg-type]
    events: list[int] = []
    poll = PollPolicy(max_lag=0.05, min_interval=0.02, status_concurrency=64)
    async with HailuoClient(
        "apimart", api_key="k", transport=MockTransport(gw, keep_requests=False), max_concurrency=64, poll=poll
    ) as client:
        # A first round of the same size grows every cache, pool and table to its working size.
        await client.gather_generations([f"warm {i}" for i in range(count)])
        gw.tasks.clear()  # the fake gateway's own records are not the client's
        gw.status_times.clear()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        done = 0

        def on_event(event: ItemEvent) -> None:
            if event.kind == "completed":
                events.append(1)

        async for _index, outcome in client.as_completed((f"item {i}" for i in range(count)), on_event=on_event):
            assert isinstance(outcome, Generation)
            done += 1
        gw.tasks.clear()
        gw.status_times.clear()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = client.statistics()
        assert stats.polling == 0
        assert stats.submitting == 0
        assert len(client._require_open()) == 0
    library = [tracemalloc.Filter(True, "*hailuo_async*")]
    growth = sum(
        s.size_diff for s in after.filter_traces(library).compare_to(before.filter_traces(library), "filename")
    )
    assert done == count
    assert len(events) == count
    # Nothing retained per item: any leaked Task, Generation or table entry (100+ bytes each) would show;
    # what remains is allocator noise such as a dict table resized at its peak size.
    assert growth < 256 * 1024, growth


# Cancellation and exit leave no task, session or connection behind (ResourceWarning is an error here).
async def test_no_leftovers_after_cancel_and_exit() -> None:
    cfg = SimulatorConfig.from_json({"generation": {"kind": "fixed", "median": 5.0}})
    async with Simulator(cfg) as sim:
        before = {t for t in asyncio.all_tasks() if not t.done()}
        client = HailuoClient("toapis", api_key=SECRET, base_url=sim.urls.toapis, submits_per_minute=None)
        async with client:
            with anyio.move_on_after(0.5):
                await client.gather_generations([f"leftover {i}" for i in range(30)])
        await anyio.sleep(0.05)
        after = {t for t in asyncio.all_tasks() if not t.done()}
        assert client.transport.closed  # type: ignore[attr-defined]
        leftover = [t for t in after - before if "hailuo" in repr(t.get_coro())]
        assert leftover == []
