"""Webhooks the simulator sends: apimart's ``<webhook>/callback``, toapis' signed events, MiniMax's challenge and
state changes, and the seeded faults (drops, duplicates, delays, reordering) and retries, against a small aiohttp
receiver on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import hmac
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import aiohttp
import anyio
import msgspec
import pytest
from aiohttp import web

from hailuo_async.simulator import GenerationTimes, Simulator, SimulatorConfig, Webhooks
from hailuo_async.simulator.__main__ import build_arg_parser, config_from_args

from .wire import AUTH, MODEL, on_fake_clock, status_url, submit_url, task_id_of

pytestmark = pytest.mark.anyio

FAST_RETRIES = (0.05, 0.05, 0.05)
MINIMAX_OK = {"status_code": 0, "status_msg": "success"}
CHALLENGE_FAILED = {"status_code": 2013, "status_msg": "invalid params, fail to check callback url"}


class Call(NamedTuple):
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


Reply = Callable[[Call], Awaitable[web.StreamResponse]]


def answer(status: int, body: Any = None) -> Reply:
    async def reply(call: Call) -> web.StreamResponse:
        return web.json_response(body if body is not None else {}, status=status)

    return reply


def late(seconds: float) -> Reply:
    async def reply(call: Call) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response({})

    return reply


def echo_with(status: int) -> Reply:
    async def reply(call: Call) -> web.StreamResponse:
        body = call.json()
        if isinstance(body, dict) and set(body) == {"challenge"}:
            return web.json_response({"challenge": body["challenge"]}, status=status)
        return web.json_response({}, status=status)

    return reply


echo = echo_with(200)
"""What a well-behaved receiver does: echo MiniMax's challenge, take everything else."""


class Receiver:
    """Records every POST; ``script[path]`` lists the replies to give in turn there (the last one repeats)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.script: dict[str, list[Reply]] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        call = Call(request.path, request.query_string, dict(request.headers), await request.read(), time.monotonic())
        self.calls.append(call)
        replies = self.script.get(request.path)
        if not replies:
            return await echo(call)
        return await (replies.pop(0) if len(replies) > 1 else replies[0])(call)

    def at(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    async def wait(self, count: int, path: str | None = None, timeout: float = 3.0) -> list[Call]:
        """The calls (at ``path``) once there are ``count`` of them."""
        with anyio.fail_after(timeout):
            while len(calls := self.at(path) if path is not None else self.calls) < count:
                await anyio.sleep(0.01)
        return list(calls)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiving = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiving.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiving.url = f"http://127.0.0.1:{port}"
    try:
        yield receiving
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def simulator(seconds: float = 0.15, **webhooks: Any) -> AsyncIterator[Simulator]:
    """A simulator whose tasks take ``seconds`` (half of it queued) and retry webhooks quickly."""
    config = SimulatorConfig(
        generation=GenerationTimes(kind="fixed", median=seconds, min=0.0),
        queue_fraction=0.5,
        webhooks=Webhooks(**{"retry_delays": FAST_RETRIES, **webhooks}),
    )
    async with Simulator(config) as sim:
        yield sim


def request_body(provider: str, url: str | None, prompt: str = "a fox") -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "prompt": prompt}
    if url is not None:
        if provider == "apimart":
            body["webhook"] = url
        elif provider == "toapis":
            body["metadata"] = {"callback_url": url}
        else:
            body["callback_url"] = url
    return body


async def submit(
    http: aiohttp.ClientSession, sim: Simulator, provider: str, url: str | None, prompt: str = "a fox"
) -> tuple[int, Any]:
    async with http.post(submit_url(sim, provider), json=request_body(provider, url, prompt), headers=AUTH) as answer:
        return answer.status, await answer.json()


async def created(
    http: aiohttp.ClientSession, sim: Simulator, provider: str, url: str | None, prompt: str = "a fox"
) -> str:
    status, body = await submit(http, sim, provider, url, prompt)
    assert status == 200, body
    return task_id_of(provider, body)


async def status_of(http: aiohttp.ClientSession, sim: Simulator, provider: str, task_id: str) -> Any:
    async with http.get(status_url(sim, provider, task_id), headers=AUTH) as response:
        return await response.json()


async def settle(seconds: float = 0.3) -> None:
    """Leave time for what must *not* happen (a retry, a copy, a late delivery) to show up."""
    await anyio.sleep(seconds)


async def until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait until ``check()`` holds (what must happen, however loaded the machine)."""
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.01)


def ended(sim: Simulator, deliveries: int) -> Callable[[], bool]:
    """Whether ``deliveries`` deliveries have been delivered, given up or dropped."""

    def check() -> bool:
        stats = sim.stats()
        return stats.webhooks_delivered + stats.webhooks_failed + stats.webhooks_dropped >= deliveries

    return check


def sign(secret: str, call: Call) -> str:
    event_id, timestamp = call.headers["X-ToAPIs-Webhook-Id"], call.headers["X-ToAPIs-Webhook-Timestamp"]
    signed = f"{event_id}.{timestamp}.".encode() + call.body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


# -- apimart ---------------------------------------------------------------------------------------------------


async def test_apimart_posts_the_status_answer_to_callback(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator() as sim:
        done = await created(http, sim, "apimart", f"{receiver.url}/hooks/?tenant=7")
        failed = await created(http, sim, "apimart", f"{receiver.url}/failing", "a fox {{sim:fail}}")
        [done_call] = await receiver.wait(1, "/hooks/callback")
        [failed_call] = await receiver.wait(1, "/failing/callback")
        done_status = await status_of(http, sim, "apimart", done)
        failed_status = await status_of(http, sim, "apimart", failed)
        await until(ended(sim, 2))
        await settle()
        stats = sim.stats()

    assert failed_call.json() == failed_status  # the GET answer, word for word
    body = done_call.json()
    assert body["data"]["status"] == "completed"
    # The video URL is signed afresh on every answer: the same video, maybe another expiry.
    sent_video = body["data"].pop("result")["videos"][0]
    polled_video = done_status["data"].pop("result")["videos"][0]
    assert [url.split("?")[0] for url in sent_video["url"]] == [url.split("?")[0] for url in polled_video["url"]]
    assert body == done_status
    assert done_call.query == "tenant=7"  # the base URL's query stays
    assert done_call.headers["Content-Type"] == "application/json"
    assert not [name for name in done_call.headers if name.lower().startswith("x-toapis")]  # no signature
    # Terminal states only: one POST per task.
    assert len(receiver.calls) == 2
    assert (stats.webhooks_sent, stats.webhooks_delivered, stats.webhooks_failed) == (2, 2, 0)


async def test_apimart_webhook_urls_are_checked(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(apimart_port_check=True) as sim:
        status, body = await submit(http, sim, "apimart", "ftp://127.0.0.1/hook")
        assert (status, body["error"]["type"]) == (400, "invalid_request_error")
        status, body = await submit(http, sim, "apimart", "http://hooks.example.invalid:8080/hook")
        assert status == 400
        assert "port 80 or 443" in body["error"]["message"]
        # Port 443 passes the check (the task hangs, so nothing is ever sent there).
        status, _ = await submit(http, sim, "apimart", "https://hooks.example.invalid/hook", "a fox {{sim:hang}}")
        assert status == 200
        # Loopback passes on any port, so tests can listen where they like.
        await created(http, sim, "apimart", f"{receiver.url}/local")
        await receiver.wait(1, "/local/callback")
        assert sim.stats().tasks_created == 2
    async with simulator() as sim:  # the check is off by default
        status, _ = await submit(http, sim, "apimart", "http://hooks.example.invalid:8080/x", "{{sim:hang}}")
        assert status == 200


# -- toapis ----------------------------------------------------------------------------------------------------


async def test_toapis_events_are_signed(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(toapis_secret="whsec-test-1") as sim:
        done = await created(http, sim, "toapis", f"{receiver.url}/t")
        failed = await created(http, sim, "toapis", f"{receiver.url}/t", "a fox {{sim:fail}}")
        calls = await receiver.wait(2, "/t")
        assert (await status_of(http, sim, "toapis", done))["status"] == "completed"
    by_task = {call.json()["data"]["task_id"]: call for call in calls}
    for task_id, event_type, word in (
        (done, "generation.completed", "completed"),
        (failed, "generation.failed", "failed"),
    ):
        call = by_task[task_id]
        body = call.json()
        assert body == {
            "id": call.headers["X-ToAPIs-Webhook-Id"],
            "type": event_type,
            "data": {"task_id": task_id, "task_type": "video", "model": MODEL, "status": word},
        }
        assert body["id"].startswith("evt_")
        assert abs(int(call.headers["X-ToAPIs-Webhook-Timestamp"]) - time.time()) < 10
        assert call.headers["X-ToAPIs-Webhook-Signature"] == f"v1={sign('whsec-test-1', call)}"
        assert call.headers["X-ToAPIs-Webhook-Signature"] != f"v1={sign('another secret', call)}"
    assert len({call.headers["X-ToAPIs-Webhook-Id"] for call in calls}) == 2


async def test_toapis_rotation_signs_with_both_secrets(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(toapis_secret="new-secret", toapis_previous_secret="old-secret") as sim:
        await created(http, sim, "toapis", f"{receiver.url}/t")
        [call] = await receiver.wait(1, "/t")
    assert call.headers["X-ToAPIs-Webhook-Signature"] == f"v1={sign('new-secret', call)},v1={sign('old-secret', call)}"


async def test_toapis_same_origin_with_the_default_url(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(toapis_default_url=f"{receiver.url}/default") as sim:
        status, body = await submit(http, sim, "toapis", "http://127.0.0.1:9/elsewhere")
        assert (status, body["error"]["type"]) == (400, "invalid_request")
        assert "same-origin" in body["error"]["message"]
        await created(http, sim, "toapis", None)  # no callback_url: the key's default URL
        await created(http, sim, "toapis", f"{receiver.url}/per-request")  # same origin, other path
        await receiver.wait(1, "/default")
        await receiver.wait(1, "/per-request")
        assert sim.stats().tasks_created == 2


async def test_toapis_endpoint_test_event(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(toapis_secret="s1") as sim:
        test_url = sim.urls.stats.replace("/stats", "/webhooks/test")
        async with http.post(test_url, json={"url": f"{receiver.url}/probe"}) as response:
            assert response.status == 200
            sent = await response.json()
        async with http.post(test_url, json={}) as response:
            assert response.status == 400  # no url and no toapis_default_url
    [call] = receiver.at("/probe")
    assert sent == {"event_id": call.headers["X-ToAPIs-Webhook-Id"], "status": 200}
    assert call.json()["type"] == "endpoint.test"
    assert call.headers["X-ToAPIs-Webhook-Signature"] == f"v1={sign('s1', call)}"


# -- MiniMax ---------------------------------------------------------------------------------------------------


async def test_minimax_challenge_then_state_changes(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(seconds=0.2) as sim:
        status, answer = await submit(http, sim, "minimax", f"{receiver.url}/mm")
        assert (status, answer["base_resp"]) == (200, MINIMAX_OK)
        task_id = answer["task_id"]
        calls = await receiver.wait(3, "/mm")
        query = await status_of(http, sim, "minimax", task_id)
        await until(ended(sim, 2))
        await settle()
        stats = sim.stats()
    challenge, processing, success = (call.json() for call in calls)
    assert list(challenge) == ["challenge"] and isinstance(challenge["challenge"], str) and challenge["challenge"]
    assert calls[0].at <= calls[1].at  # the challenge came before the task existed
    assert processing == {"task_id": task_id, "status": "processing", "file_id": "", "base_resp": MINIMAX_OK}
    assert success == {"task_id": task_id, "status": "success", "file_id": query["file_id"], "base_resp": MINIMAX_OK}
    assert query["status"] == "Success"
    assert len(receiver.calls) == 3
    assert (stats.webhook_challenges, stats.webhook_challenges_failed, stats.webhooks_delivered) == (1, 0, 2)


async def test_minimax_failed_task(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator() as sim:
        task_id = await created(http, sim, "minimax", f"{receiver.url}/mm", "a fox {{sim:fail}}")
        calls = await receiver.wait(3, "/mm")
        query = await status_of(http, sim, "minimax", task_id)
    assert [call.json()["status"] for call in calls[1:]] == ["processing", "failed"]
    # The failure carries the reason the query gives (1027), as the query's own shape does.
    assert query["status"] == "Fail"
    assert calls[2].json() == {"task_id": task_id, "status": "failed", "file_id": "", "base_resp": query["base_resp"]}


@pytest.mark.parametrize("failure", ["wrong echo", "too late", "4xx", "not an object", "unreachable"])
async def test_minimax_challenge_not_echoed_creates_no_task(
    failure: str, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    replies: dict[str, Reply] = {
        "wrong echo": answer(200, {"challenge": "something else"}),
        "too late": late(0.5),
        "4xx": echo_with(404),  # the right echo, with the wrong status
        "not an object": answer(200, "challenge"),
    }
    url = f"{receiver.url}/mm"
    if failure == "unreachable":
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/mm"
    else:
        receiver.script["/mm"] = [replies[failure]]
    async with simulator(challenge_timeout=0.2) as sim:
        status, body = await submit(http, sim, "minimax", url)
        assert (status, body) == (200, {"base_resp": CHALLENGE_FAILED})
        assert sim.tasks == []
        async with http.get(sim.urls.stats.replace("/stats", "/tasks")) as response:
            assert await response.json() == []
        stats = sim.stats()
        assert (stats.tasks_created, stats.webhook_challenges, stats.webhook_challenges_failed) == (0, 1, 1)
        sim.update_config(minimax_http_errors=True)  # with real HTTP statuses it is a 400
        status, body = await submit(http, sim, "minimax", url)
        assert (status, body) == (400, {"base_resp": CHALLENGE_FAILED})
        await settle(0.6 if failure == "too late" else 0.2)
    assert len(receiver.calls) == (0 if failure == "unreachable" else 2)  # two challenges, nothing else


# -- retries ---------------------------------------------------------------------------------------------------


async def test_retries_after_5xx_and_timeouts_never_after_4xx(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    receiver.script = {
        "/recovers/callback": [answer(500), answer(503), answer(200)],
        "/late/callback": [late(0.4), answer(200)],
        "/down/callback": [answer(502)],
        "/gone/callback": [answer(410)],
        "/missing/callback": [answer(404)],
    }
    async with simulator(timeout=0.2) as sim:
        for path in receiver.script:
            await created(http, sim, "apimart", receiver.url + path.removesuffix("/callback"), path)
        await receiver.wait(4, "/down/callback")
        await until(ended(sim, 5))
        await settle()
        stats = sim.stats()
    counts = {path: len(receiver.at(path)) for path in receiver.script}
    assert counts == {
        "/recovers/callback": 3,
        "/late/callback": 2,
        "/down/callback": 4,  # the first try and retry_delays' three
        "/gone/callback": 1,
        "/missing/callback": 1,
    }
    recovers = receiver.at("/recovers/callback")
    assert len({call.body for call in recovers}) == 1  # a retry sends the same body
    assert recovers[1].at - recovers[0].at >= FAST_RETRIES[0] * 0.8
    assert stats.webhooks_sent == 11
    assert stats.webhooks_retried == 2 + 1 + 3
    assert (stats.webhooks_delivered, stats.webhooks_failed) == (2, 3)


async def test_no_retries_when_the_schedule_is_empty(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    receiver.script["/down/callback"] = [answer(503)]
    async with simulator(retry_delays=()) as sim:
        await created(http, sim, "apimart", f"{receiver.url}/down")
        await until(ended(sim, 1))
        await settle()
        assert (sim.stats().webhooks_retried, sim.stats().webhooks_failed) == (0, 1)
    assert len(receiver.calls) == 1


# -- faults ----------------------------------------------------------------------------------------------------


async def test_drop_share_one_delivers_nothing(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(drop=1.0) as sim:
        for provider in ("apimart", "toapis", "minimax"):
            await created(http, sim, provider, f"{receiver.url}/{provider}")
        await until(ended(sim, 4))
        await settle()
        stats = sim.stats()
    # Only MiniMax's challenge reached the receiver: it is part of the submit, not a delivery.
    assert [call.path for call in receiver.calls] == ["/minimax"]
    assert (stats.webhooks_dropped, stats.webhooks_sent, stats.webhooks_delivered) == (4, 0, 0)


async def test_duplicates_repeat_the_same_event(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(duplicate=1.0) as sim:
        await created(http, sim, "toapis", f"{receiver.url}/t")
        await created(http, sim, "apimart", f"{receiver.url}/a")
        first, second = await receiver.wait(2, "/t")
        copies = await receiver.wait(2, "/a/callback")
        await until(ended(sim, 4))
        await settle()
        stats = sim.stats()
    assert first.body == second.body
    assert first.headers["X-ToAPIs-Webhook-Id"] == second.headers["X-ToAPIs-Webhook-Id"]
    assert copies[0].body == copies[1].body
    assert len(receiver.calls) == 4
    assert (stats.webhooks_duplicated, stats.webhooks_delivered) == (2, 4)


async def test_delay_postpones_each_delivery(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(seconds=0.1, delay=0.4) as sim:
        start = time.monotonic()
        await created(http, sim, "apimart", f"{receiver.url}/a")
        [call] = await receiver.wait(1)
    assert call.at - start >= 0.1 + 0.4 - 0.02


async def test_reorder_sends_processing_after_the_end(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with simulator(seconds=0.2, reorder=1.0) as sim:
        await created(http, sim, "minimax", f"{receiver.url}/mm")
        calls = await receiver.wait(3, "/mm")
    assert [call.json().get("status") for call in calls] == [None, "success", "processing"]


async def test_faults_are_seeded(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    delivered: list[list[str]] = []
    for _ in range(2):
        receiver.calls.clear()
        async with simulator(seconds=0.05, drop=0.5) as sim:
            for n in range(10):
                await created(http, sim, "toapis", f"{receiver.url}/{n}", f"prompt {n}")
            await until(ended(sim, 10))
            assert sim.stats().webhooks_dropped + sim.stats().webhooks_delivered == 10
        delivered.append(sorted(call.path for call in receiver.calls))
    assert delivered[0] == delivered[1]
    assert 0 < len(delivered[0]) < 10


async def test_deliveries_follow_an_injected_clock(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    config = SimulatorConfig(generation=GenerationTimes(kind="fixed", median=60.0, max=None), queue_fraction=0.5)
    async with on_fake_clock(config) as (sim, now):
        await created(http, sim, "minimax", f"{receiver.url}/mm")
        await settle(0.15)
        assert len(receiver.calls) == 1  # the challenge only: no time has passed
        now[0] += 30.0
        assert [call.json()["status"] for call in (await receiver.wait(2))[1:]] == ["processing"]
        now[0] += 30.0
        assert [call.json()["status"] for call in (await receiver.wait(3))[1:]] == ["processing", "success"]


async def test_stopping_cancels_pending_deliveries(
    receiver: Receiver, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script["/retrying/callback"] = [answer(503)]
    caplog.set_level(logging.ERROR, logger="asyncio")
    before = asyncio.all_tasks()
    async with simulator(seconds=0.05, retry_delays=(30.0,)) as sim:
        await created(http, sim, "apimart", f"{receiver.url}/retrying")  # waits 30 s before its retry
        await created(http, sim, "minimax", f"{receiver.url}/mm", "{{sim:hang}}")  # never ends
        await created(http, sim, "toapis", f"{receiver.url}/later", "{{sim:time=30}}")  # due in 30 s
        await receiver.wait(1, "/retrying/callback")
        sim.update_config(webhooks=Webhooks(delay=30.0))
        await created(http, sim, "apimart", f"{receiver.url}/delayed")  # will sleep 30 s in its delay
        await settle(0.2)
        assert len(asyncio.all_tasks() - before) >= 3  # the scheduler and two deliveries, at least
    await anyio.sleep(0.05)  # the receiver's side of the closed connections ends too
    assert {task for task in asyncio.all_tasks() if not task.done()} - before == set()
    gc.collect()
    assert [record.getMessage() for record in caplog.records] == []
    assert receiver.at("/later") == [] and receiver.at("/delayed/callback") == []


# -- configuration ---------------------------------------------------------------------------------------------


def test_config_checks_and_json() -> None:
    config = SimulatorConfig.from_json(
        '{"webhooks": {"drop": 0.25, "delay": [0.5, 2], "retry_delays": [1, 2], "toapis_secret": "k"}}'
    )
    assert config.webhooks == Webhooks(drop=0.25, delay=(0.5, 2.0), retry_delays=(1.0, 2.0), toapis_secret="k")
    assert SimulatorConfig.from_json(config.to_json()) == config
    defaults = Webhooks()
    assert (defaults.retry_delays, defaults.timeout, defaults.challenge_timeout) == ((10.0, 30.0, 60.0), 10.0, 3.0)
    assert (defaults.drop, defaults.duplicate, defaults.reorder, defaults.delay) == (0.0, 0.0, 0.0, 0.0)
    assert (defaults.toapis_default_url, defaults.apimart_port_check) == (None, False)
    for bad in (
        {"drop": 1.5},
        {"duplicate": -0.1},
        {"delay": (2.0, 1.0)},
        {"retry_delays": (-1.0,)},
        {"timeout": 0.0},
        {"toapis_secret": ""},
        {"toapis_default_url": "ftp://x"},
    ):
        with pytest.raises(ValueError, match="webhooks"):
            Webhooks(**bad)


def test_command_line_flags() -> None:
    parser = argparse.ArgumentParser()
    build_arg_parser(parser)
    args = parser.parse_args(
        [
            "--webhook-secret=s2",
            "--webhook-previous-secret=s1",
            "--webhook-default-url=https://hooks.example.invalid/h",
            "--webhook-drop=0.1",
            "--webhook-duplicate=0.2",
            "--webhook-reorder=0.3",
            "--webhook-delay=0.5,1.5",
            "--webhook-retry-delays=none",
        ]
    )
    assert config_from_args(args).webhooks == Webhooks(
        toapis_secret="s2",
        toapis_previous_secret="s1",
        toapis_default_url="https://hooks.example.invalid/h",
        drop=0.1,
        duplicate=0.2,
        reorder=0.3,
        delay=(0.5, 1.5),
        retry_delays=(),
    )
    args = parser.parse_args(
        ["--config", '{"webhooks": {"timeout": 2}}', "--webhook-retry-delays=1,2", "--webhook-delay=3"]
    )
    assert config_from_args(args).webhooks == Webhooks(timeout=2.0, retry_delays=(1.0, 2.0), delay=3.0)
    assert config_from_args(parser.parse_args([])).webhooks == Webhooks()
    for bad in ("--webhook-drop=2", "--webhook-delay=2,1", "--webhook-retry-delays=1,x", "--webhook-default-url=x"):
        with pytest.raises(SystemExit):
            parser.parse_args([bad])
