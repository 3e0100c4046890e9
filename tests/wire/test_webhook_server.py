"""Tests for hailuo_async._webhook.WebhookServer: real deliveries over loopback with an aiohttp client.

The server binds 127.0.0.1 on a free port; each test checks the replies, the events passed on, the 1 MiB cap
(with and without ``Content-Length``), and that the server closes cleanly (the suite turns warnings into errors,
so an unclosed runner or socket fails the test).
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest

from hailuo_async import FakeClock, InvalidRequestError, TaskState
from hailuo_async._webhook import MAX_BODY, Webhook, WebhookReceiver, WebhookServer
from hailuo_async.providers import WebhookEvent, get_provider
from hailuo_async.providers.toapis import SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_ID_HEADER, sign_webhook

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parents[1] / "fixtures"
WEBHOOK_SECRET = "whsec-TEST-SECRET-0123456789"


def delivery(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / "webhook" / name).read_bytes()


class Running:
    """A started server for one provider, the URL the provider would be given, and the events received."""

    def __init__(self, server: WebhookServer, url: str, events: list[WebhookEvent], clock: FakeClock) -> None:
        self.server = server
        self.url = url
        self.events = events
        self.clock = clock


async def start(provider: str) -> Running:
    events: list[WebhookEvent] = []
    clock = FakeClock()
    config = Webhook(listen="127.0.0.1:0", secret=WEBHOOK_SECRET)
    receiver = WebhookReceiver(get_provider(provider), config, on_event=events.append, clock=clock)
    server = WebhookServer(receiver)
    base = await server.start()
    return Running(server, receiver.callback_url(base), events, clock)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_start_returns_the_bound_loopback_url() -> None:
    running = await start("apimart")
    try:
        base = running.server.base_url
        assert base is not None and base.startswith("http://127.0.0.1:")
        assert int(base.rsplit(":", 1)[1]) > 0
        assert running.url.startswith(base + "/hailuo/")
        with pytest.raises(RuntimeError):
            await running.server.start()
    finally:
        await running.server.close()
    assert running.server.base_url is None


async def test_apimart_delivery_over_the_wire(session: aiohttp.ClientSession) -> None:
    running = await start("apimart")
    try:
        async with session.post(running.url + "/callback", data=delivery("apimart", "completed.json")) as response:
            assert response.status == 200
            assert await response.json() == {"ok": True}
        async with session.post(running.url + "/callback", data=delivery("apimart", "completed.json")) as response:
            assert response.status == 200  # apimart's duplicate: answered, not passed on
    finally:
        await running.server.close()
    [event] = running.events
    assert event.task_id == "task_01KBS40K78KGHZ9SDBWQSGSXRK"
    assert event.status is not None and event.status.state is TaskState.COMPLETED


async def test_toapis_signed_delivery_over_the_wire(session: aiohttp.ClientSession) -> None:
    running = await start("toapis")
    body = delivery("toapis", "completed.json")
    stamp = str(int(running.clock.time()))
    headers = {
        WEBHOOK_ID_HEADER: "evt_1",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: "v1=" + sign_webhook(WEBHOOK_SECRET, "evt_1", stamp, body),
        "Content-Type": "application/json",
    }
    try:
        async with session.post(running.url, data=body, headers=headers) as response:
            assert response.status == 200
        forged = dict(headers, **{SIGNATURE_HEADER: "v1=" + "f" * 64})
        async with session.post(running.url, data=body, headers=forged) as response:
            assert response.status == 401
    finally:
        await running.server.close()
    [event] = running.events
    assert event.event_id == "evt_01JZ8Q4W6M3K2C9T7N5B1V0XHS" and event.task_id == "vid_6f1d0c2a9b8e4d7c"


async def test_minimax_challenge_echoed_over_the_wire(session: aiohttp.ClientSession) -> None:
    running = await start("minimax")
    try:
        async with session.post(running.url, data=delivery("minimax", "challenge.json")) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            assert msgspec.json.decode(await response.read()) == {"challenge": "1a3cs1j-601a-118y-ch52-o48911eabc3u"}
        async with session.post(running.url, data=delivery("minimax", "success.json")) as response:
            assert response.status == 200
    finally:
        await running.server.close()
    assert [e.task_id for e in running.events] == ["176843862716480"]


async def test_refusals_over_the_wire(session: aiohttp.ClientSession) -> None:
    running = await start("minimax")
    base = running.server.base_url
    assert base is not None
    try:
        async with session.get(running.url) as response:
            assert response.status == 405 and response.headers["Allow"] == "POST"
        async with session.post(base + "/elsewhere", data=b"{}") as response:
            assert response.status == 404
        async with session.post(base + "/hailuo/not-the-token-abcdefghij", data=b"{}") as response:
            assert response.status == 401
        async with session.post(running.url, data=b"{not json") as response:
            assert response.status == 400
    finally:
        await running.server.close()
    assert running.events == []


async def test_body_over_one_mib_gets_413(session: aiohttp.ClientSession) -> None:
    running = await start("apimart")
    url = running.url + "/callback"

    async def chunked(size: int) -> AsyncIterator[bytes]:
        # No Content-Length: the server must stop reading at its own cap.
        sent = 0
        while sent < size:
            chunk = b" " * min(65536, size - sent)
            sent += len(chunk)
            yield chunk

    try:
        # BytesIO: aiohttp warns about large raw bytes bodies; this one still carries a Content-Length.
        async with session.post(url, data=io.BytesIO(b" " * (MAX_BODY + 1))) as response:
            assert response.status == 413
            assert await response.json() == {"error": "body too large"}
        async with session.post(url, data=chunked(MAX_BODY + 1)) as response:
            assert response.status == 413
        async with session.post(url, data=chunked(3 * MAX_BODY)) as response:
            assert response.status == 413
        body = delivery("apimart", "failed.json")
        async with session.post(url, data=io.BytesIO(body + b" " * (MAX_BODY - len(body)))) as response:
            assert response.status == 200  # exactly the cap is fine
    finally:
        await running.server.close()
    assert len(running.events) == 1


async def test_server_closes_cleanly(session: aiohttp.ClientSession) -> None:
    running = await start("apimart")
    base = running.server.base_url
    assert base is not None
    # A kept-alive connection is open when the server closes.
    async with session.post(running.url + "/callback", data=delivery("apimart", "completed.json")) as response:
        assert response.status == 200
    await running.server.close()
    await running.server.close()  # twice is fine
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.post(running.url + "/callback", data=b"{}") as response:
            pass


async def test_context_manager_and_no_access_log(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[WebhookEvent] = []
    receiver = WebhookReceiver(get_provider("minimax"), Webhook(listen="127.0.0.1:0"), on_event=events.append)
    with caplog.at_level(logging.DEBUG):
        async with WebhookServer(receiver) as server:
            assert server.base_url is not None
            url = receiver.callback_url(server.base_url)
            async with session.post(url, data=delivery("minimax", "success.json")) as response:
                assert response.status == 200
    assert len(events) == 1
    token = url.rsplit("/", 1)[1]
    assert all(token not in record.getMessage() for record in caplog.records)


async def test_an_address_in_use_is_refused_cleanly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        receiver = WebhookReceiver(
            get_provider("apimart"), Webhook(listen=f"127.0.0.1:{port}"), on_event=lambda _: None
        )
        server = WebhookServer(receiver)
        with pytest.raises(InvalidRequestError) as info:
            await server.start()
        assert info.value.parameter == "Webhook.listen"
        assert server.base_url is None
        await server.close()
