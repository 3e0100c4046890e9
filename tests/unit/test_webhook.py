"""Tests for hailuo_async._webhook: the ``Webhook`` setting and the receiver on fixture deliveries, without a
network (the server is in ``tests/wire/test_webhook_server.py``).

Each refusal is checked for its status and for ``on_event`` not being called; the signing secret and the path
token are searched for in reprs and in every log record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import msgspec
import pytest

from hailuo_async import FakeClock, InvalidRequestError, TaskState
from hailuo_async._webhook import (
    MAX_BODY,
    SECRET_ENV_VAR,
    Webhook,
    WebhookReceiver,
    WebhookReply,
    WebhookServer,
    resolve_webhook,
)
from hailuo_async.providers import WebhookEvent, get_provider
from hailuo_async.providers.toapis import SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_ID_HEADER, sign_webhook

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parents[1] / "fixtures"
WEBHOOK_SECRET = "whsec-TEST-SECRET-0123456789"
TOKEN = "tok-TEST-TOKEN-abcdefghijklmnop"
LOCAL = Webhook(listen="127.0.0.1:0", secret=WEBHOOK_SECRET)


def delivery(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / "webhook" / name).read_bytes()


class Harness:
    """A receiver for one provider on a fake clock, recording what reaches ``on_event``."""

    def __init__(self, provider: str, config: Webhook = LOCAL, **kwargs: int) -> None:
        self.clock = FakeClock()
        self.events: list[WebhookEvent] = []
        self.receiver = WebhookReceiver(
            get_provider(provider), config, on_event=self.events.append, token=TOKEN, clock=self.clock, **kwargs
        )
        suffix = "/callback" if provider == "apimart" else ""
        self.path = f"/hailuo/{TOKEN}{suffix}"

    async def post(
        self, body: bytes, headers: Mapping[str, str] | None = None, *, path: str | None = None, method: str = "POST"
    ) -> WebhookReply:
        return await self.receiver.handle(method, path or self.path, headers or {}, body)

    def signed(
        self, body: bytes, *, event_id: str = "evt_1", skew: float = 0.0, secret: str = WEBHOOK_SECRET
    ) -> dict[str, str]:
        stamp = str(int(self.clock.time() + skew))
        return {
            WEBHOOK_ID_HEADER: event_id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: "v1=" + sign_webhook(secret, event_id, stamp, body),
        }


def json_of(reply: WebhookReply) -> object:
    assert ("Content-Type", "application/json") in reply.headers
    return msgspec.json.decode(reply.body)


# -- accepted deliveries ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task_id", "state"),
    [
        ("completed.json", "task_01KBS40K78KGHZ9SDBWQSGSXRK", TaskState.COMPLETED),
        ("failed.json", "task_01K8SGYNNNVBQTXNR4MM964S7K", TaskState.FAILED),
    ],
)
async def test_apimart_delivery_accepted_and_decoded(name: str, task_id: str, state: TaskState) -> None:
    h = Harness("apimart")
    reply = await h.post(delivery("apimart", name))
    assert reply.status == 200 and json_of(reply) == {"ok": True}
    [event] = h.events
    assert event.kind == "status" and event.task_id == task_id
    assert event.status is not None and event.status.state is state
    if state is TaskState.COMPLETED:
        assert event.status.video_url is not None


async def test_apimart_delivery_also_accepted_without_the_callback_suffix() -> None:
    h = Harness("apimart")
    assert (await h.post(delivery("apimart", "completed.json"), path=f"/hailuo/{TOKEN}")).status == 200
    assert len(h.events) == 1


@pytest.mark.parametrize(
    ("name", "state", "file_id"),
    [
        ("processing.json", TaskState.RUNNING, None),
        ("success.json", TaskState.COMPLETED, "176844028768320"),
        ("success_capitalised.json", TaskState.COMPLETED, "176844028768320"),
        ("failed.json", TaskState.FAILED, None),
    ],
)
async def test_minimax_delivery_accepted_and_decoded(name: str, state: TaskState, file_id: str | None) -> None:
    h = Harness("minimax")
    reply = await h.post(delivery("minimax", name))
    assert reply.status == 200
    [event] = h.events
    assert event.task_id == "176843862716480"
    assert event.status is not None and (event.status.state, event.status.file_id) == (state, file_id)


@pytest.mark.parametrize(
    ("name", "state"), [("completed.json", TaskState.COMPLETED), ("failed.json", TaskState.FAILED)]
)
async def test_toapis_signed_delivery_accepted_and_decoded(name: str, state: TaskState) -> None:
    h = Harness("toapis")
    body = delivery("toapis", name)
    reply = await h.post(body, h.signed(body))
    assert reply.status == 200
    [event] = h.events
    assert event.event_id is not None and event.task_id is not None and event.task_id.startswith("vid_")
    assert event.status is not None and event.status.state is state and event.status.video_url is None


async def test_toapis_both_signatures_of_a_rotation_are_accepted() -> None:
    body = delivery("toapis", "completed.json")
    for current_first in (True, False):
        h = Harness("toapis")
        headers = h.signed(body)
        old = "v1=" + sign_webhook("the-previous-secret", "evt_1", headers[TIMESTAMP_HEADER], body)
        ours = headers[SIGNATURE_HEADER]
        headers[SIGNATURE_HEADER] = f"{ours},{old}" if current_first else f"{old},{ours}"
        assert (await h.post(body, headers)).status == 200
        assert len(h.events) == 1


async def test_toapis_header_names_in_any_case_and_a_query_string() -> None:
    h = Harness("toapis")
    body = delivery("toapis", "completed.json")
    headers = {name.lower(): value for name, value in h.signed(body).items()}
    assert (await h.post(body, headers, path=h.path + "?attempt=2")).status == 200


async def test_minimax_challenge_is_echoed_and_not_passed_on() -> None:
    h = Harness("minimax")
    reply = await h.post(delivery("minimax", "challenge.json"))
    assert reply.status == 200
    assert json_of(reply) == {"challenge": "1a3cs1j-601a-118y-ch52-o48911eabc3u"}
    assert h.events == []


async def test_toapis_endpoint_test_gets_200_and_is_not_passed_on() -> None:
    h = Harness("toapis")
    body = delivery("toapis", "test.json")
    assert (await h.post(body, h.signed(body, event_id="evt_test"))).status == 200
    assert h.events == []


# -- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["apimart", "toapis", "minimax"])
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", None, 405),
        ("PUT", None, 405),
        ("POST", "/", 404),
        ("POST", "/hailuo", 404),
        ("POST", "/other/" + TOKEN, 404),
        ("POST", "/hailuo/" + TOKEN + "/extra", 404),
        ("POST", "/hailuo/wrong-token-abcdefghijklmnop", 401),
        ("POST", "/hailuo/" + TOKEN[:-1], 401),
        ("POST", "/hailuo/" + TOKEN + "x", 401),
        ("POST", "/hailuo/wrong-token-abcdefghijklmnop/callback", None),  # apimart: 401, others: 404
    ],
)
async def test_refused_by_method_path_or_token(
    provider: str, method: str, path: str | None, status: int | None
) -> None:
    h = Harness(provider)
    name = {"apimart": "completed.json", "toapis": "completed.json", "minimax": "success.json"}[provider]
    body = delivery(provider, name)
    reply = await h.post(body, h.signed(body), path=path, method=method)
    expected = status if status is not None else (401 if provider == "apimart" else 404)
    assert reply.status == expected
    if expected == 405:
        assert ("Allow", "POST") in reply.headers
    assert h.events == []


async def test_minimax_callback_suffix_is_not_a_route() -> None:
    h = Harness("minimax")
    reply = await h.post(delivery("minimax", "success.json"), path=f"/hailuo/{TOKEN}/callback")
    assert reply.status == 404 and h.events == []


async def test_challenge_with_a_wrong_token_is_not_echoed() -> None:
    h = Harness("minimax")
    reply = await h.post(delivery("minimax", "challenge.json"), path="/hailuo/wrong-token-abcdefghijklmnop")
    assert reply.status == 401 and b"challenge" not in reply.body


@pytest.mark.parametrize("provider", ["apimart", "toapis", "minimax"])
@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"[1, 2]", b'{"unexpected": true}'])
async def test_malformed_body_gets_400(provider: str, body: bytes) -> None:
    h = Harness(provider)
    reply = await h.post(body, h.signed(body))
    assert reply.status == 400 and h.events == []


async def test_oversized_body_gets_413() -> None:
    h = Harness("apimart")
    reply = await h.post(b" " * (MAX_BODY + 1))
    assert reply.status == 413 and h.events == []


async def test_body_of_exactly_the_limit_is_read() -> None:
    h = Harness("apimart")
    body = delivery("apimart", "completed.json")
    padded = body + b" " * (MAX_BODY - len(body))
    assert len(padded) == MAX_BODY
    assert (await h.post(padded)).status == 200
    assert len(h.events) == 1


@pytest.mark.parametrize(
    "case", ["forged", "wrong secret", "stale", "future", "unsigned", "tampered body", "no secret configured"]
)
async def test_toapis_unverified_delivery_gets_401(case: str) -> None:
    config = Webhook(listen="127.0.0.1:0") if case == "no secret configured" else LOCAL
    h = Harness("toapis", config)
    body = delivery("toapis", "completed.json")
    headers = h.signed(body)
    if case == "forged":
        headers[SIGNATURE_HEADER] = "v1=" + "0" * 64
    elif case == "wrong secret":
        headers = h.signed(body, secret="not-the-secret")
    elif case == "stale":
        headers = h.signed(body, skew=-301)
    elif case == "future":
        headers = h.signed(body, skew=+301)
    elif case == "unsigned":
        headers = {}
    elif case == "tampered body":
        body = body.replace(b"completed", b"failed")
    reply = await h.post(body, headers)
    assert reply.status == 401 and h.events == []


async def test_toapis_timestamp_window_follows_the_clock() -> None:
    h = Harness("toapis")
    body = delivery("toapis", "completed.json")
    headers = h.signed(body)
    h.clock.advance(299)
    assert (await h.post(body, headers)).status == 200
    h2 = Harness("toapis")
    headers = h2.signed(body)
    h2.clock.advance(301)
    assert (await h2.post(body, headers)).status == 401


# -- duplicates -------------------------------------------------------------------------------------------------


async def test_replayed_toapis_event_is_answered_but_not_passed_on() -> None:
    h = Harness("toapis")
    body = delivery("toapis", "completed.json")
    for _ in range(3):
        assert (await h.post(body, h.signed(body))).status == 200
    assert len(h.events) == 1
    # Another event about the same task is new.
    other = body.replace(b"evt_01JZ8Q4W6M3K2C9T7N5B1V0XHS", b"evt_other")
    assert (await h.post(other, h.signed(other, event_id="evt_other"))).status == 200
    assert len(h.events) == 2


@pytest.mark.parametrize(("provider", "name"), [("apimart", "completed.json"), ("minimax", "success.json")])
async def test_duplicate_status_is_passed_on_once(provider: str, name: str) -> None:
    h = Harness(provider)
    body = delivery(provider, name)
    for _ in range(3):
        assert (await h.post(body)).status == 200
    assert len(h.events) == 1


async def test_minimax_each_state_change_is_passed_on() -> None:
    h = Harness("minimax")
    for name in ("processing.json", "success.json", "success_capitalised.json"):
        assert (await h.post(delivery("minimax", name))).status == 200
    # "Success" after "success" is the same news.
    assert [e.status.state for e in h.events if e.status is not None] == [TaskState.RUNNING, TaskState.COMPLETED]


async def test_dedupe_memory_is_bounded() -> None:
    h = Harness("toapis", dedupe_limit=2)
    body = delivery("toapis", "completed.json")

    def event(n: int) -> bytes:
        return body.replace(b"evt_01JZ8Q4W6M3K2C9T7N5B1V0XHS", f"evt_{n}".encode())

    for n in (1, 2, 3):
        await h.post(event(n), h.signed(event(n), event_id=f"evt_{n}"))
    assert len(h.receiver._seen) == 2
    await h.post(event(1), h.signed(event(1), event_id="evt_1"))  # forgotten, so passed on again
    await h.post(event(3), h.signed(event(3), event_id="evt_3"))  # still remembered
    assert len(h.events) == 4


# -- failures inside the receiver -------------------------------------------------------------------------------


async def test_on_event_failure_gets_500_and_the_retry_is_passed_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[WebhookEvent] = []

    def flaky(event: WebhookEvent) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError(f"boom {event.task_id} {WEBHOOK_SECRET}")

    receiver = WebhookReceiver(get_provider("minimax"), LOCAL, on_event=flaky, token=TOKEN)
    body = delivery("minimax", "success.json")
    with caplog.at_level(logging.DEBUG):
        first = await receiver.handle("POST", f"/hailuo/{TOKEN}", {}, body)
    assert first.status == 500
    assert "RuntimeError" in caplog.text and "boom" not in caplog.text
    assert (await receiver.handle("POST", f"/hailuo/{TOKEN}", {}, body)).status == 200
    assert len(calls) == 2


async def test_handle_never_raises() -> None:
    class Broken:
        name = "broken"
        webhook_suffix = ""

        def check_webhook(self, *args: object, **kwargs: object) -> bool:
            raise KeyError("secret material")

    receiver = WebhookReceiver(get_provider("apimart"), LOCAL, on_event=lambda _: None, token=TOKEN)
    receiver.provider = Broken()  # type: ignore[assignment]
    reply = await receiver.handle("POST", f"/hailuo/{TOKEN}", {}, b"{}")
    assert reply.status == 500 and json_of(reply) == {"error": "internal error"}


# -- callback URL -----------------------------------------------------------------------------------------------


def test_callback_url_from_the_server_or_the_public_url() -> None:
    h = Harness("apimart")
    assert h.receiver.callback_url("http://127.0.0.1:8123") == f"http://127.0.0.1:8123/hailuo/{TOKEN}"
    public = Webhook(listen="0.0.0.0:8080", public_url="https://hooks.example.com/in/", path="/v/")
    receiver = WebhookReceiver(get_provider("toapis"), public, on_event=lambda _: None, token=TOKEN)
    assert receiver.callback_url("http://0.0.0.0:8080") == f"https://hooks.example.com/in/v/{TOKEN}"
    assert receiver.callback_url() == f"https://hooks.example.com/in/v/{TOKEN}"
    with pytest.raises(InvalidRequestError) as info:
        h.receiver.callback_url()
    assert info.value.parameter == "base_url"


async def test_callback_url_path_is_the_path_the_receiver_accepts() -> None:
    h = Harness("minimax", Webhook(listen="127.0.0.1:0", path="/deep/hooks/"))
    url = h.receiver.callback_url("http://127.0.0.1:1")
    path = url.removeprefix("http://127.0.0.1:1")
    assert (await h.post(delivery("minimax", "success.json"), path=path)).status == 200


def test_default_tokens_are_unguessable_and_distinct() -> None:
    urls = {
        WebhookReceiver(get_provider("apimart"), LOCAL, on_event=lambda _: None).callback_url("http://127.0.0.1:1")
        for _ in range(20)
    }
    assert len(urls) == 20
    assert all(len(url.rsplit("/", 1)[1]) >= 32 for url in urls)


@pytest.mark.parametrize("token", ["short", "has/slash-abcdefghijkl", "has space abcdefghijkl", ""])
def test_a_weak_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        WebhookReceiver(get_provider("apimart"), LOCAL, on_event=lambda _: None, token=token)
    assert info.value.parameter == "token" and info.value.value == "<hidden>"


# -- Webhook ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter", "value", "allowed"),
    [
        ({"listen": "nope"}, "Webhook.listen", "nope", "HOST:PORT"),
        ({"listen": "127.0.0.1"}, "Webhook.listen", "127.0.0.1", "HOST:PORT"),
        ({"listen": "127.0.0.1:65536"}, "Webhook.listen", "127.0.0.1:65536", "0 to 65535"),
        ({"listen": "127.0.0.1:-1"}, "Webhook.listen", "127.0.0.1:-1", "0 to 65535"),
        ({"listen": "127.0.0.1:http"}, "Webhook.listen", "127.0.0.1:http", "HOST:PORT"),
        ({"listen": ":8080"}, "Webhook.listen", ":8080", "HOST:PORT"),
        ({"listen": "::1:8080"}, "Webhook.listen", "::1:8080", "[::1]"),
        ({"listen": None}, "Webhook.public_url", None, "when listen is None"),
        ({"listen": "0.0.0.0:8080"}, "Webhook.public_url", None, "not a loopback address"),
        ({"public_url": "http://hooks.example.com"}, "Webhook.public_url", "http://hooks.example.com", "https"),
        ({"public_url": "ftp://hooks.example.com"}, "Webhook.public_url", "ftp://hooks.example.com", "https"),
        ({"public_url": "hooks.example.com"}, "Webhook.public_url", "hooks.example.com", "absolute"),
        (
            {"public_url": "https://u:p@hooks.example.com"},
            "Webhook.public_url",
            "https://u:p@hooks.example.com",
            "credentials",
        ),
        (
            {"public_url": "https://hooks.example.com/?a=1"},
            "Webhook.public_url",
            "https://hooks.example.com/?a=1",
            "query",
        ),
        (
            {"public_url": "https://hooks.example.com:99999"},
            "Webhook.public_url",
            "https://hooks.example.com:99999",
            "https",
        ),
        ({"listen": "127.0.0.1:0", "path": "hailuo"}, "Webhook.path", "hailuo", "starting with '/'"),
        ({"listen": "127.0.0.1:0", "path": "/a b"}, "Webhook.path", "/a b", "starting with '/'"),
        ({"listen": "127.0.0.1:0", "path": "/a?b"}, "Webhook.path", "/a?b", "no query"),
        ({"listen": "127.0.0.1:0", "secret": ""}, "Webhook.secret", "<hidden>", "non-empty"),
    ],
)
def test_webhook_validation_names_parameter_value_and_allowed(
    kwargs: dict[str, str | None], parameter: str, value: str | None, allowed: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Webhook(**kwargs)  # type: ignore[arg-type]
    assert (info.value.parameter, info.value.value) == (parameter, value)
    assert allowed in info.value.allowed
    assert parameter in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "address"),
    [
        ({"listen": "127.0.0.1:0"}, ("127.0.0.1", 0)),
        ({"listen": "localhost:65535"}, ("localhost", 65535)),
        ({"listen": "[::1]:8080"}, ("::1", 8080)),
        ({"listen": "0.0.0.0:8080", "public_url": "https://hooks.example.com"}, ("0.0.0.0", 8080)),  # noqa: S104
        ({"public_url": "https://hooks.example.com/base"}, None),
        ({"public_url": "http://127.0.0.1:9000"}, None),
        ({"public_url": "http://localhost"}, None),
        ({"public_url": "http://[::1]:9000"}, None),
    ],
)
def test_valid_webhooks(kwargs: dict[str, str], address: tuple[str, int] | None) -> None:
    assert Webhook(**kwargs).address == address  # type: ignore[arg-type]


def test_webhook_is_frozen() -> None:
    with pytest.raises(AttributeError):
        LOCAL.path = "/x"  # type: ignore[misc]


def test_server_needs_a_listen_address() -> None:
    receiver = WebhookReceiver(
        get_provider("apimart"), Webhook(public_url="https://hooks.example.com"), on_event=lambda _: None
    )
    with pytest.raises(InvalidRequestError) as info:
        WebhookServer(receiver)
    assert info.value.parameter == "Webhook.listen"


def test_resolve_webhook_reads_the_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV_VAR, f"  {WEBHOOK_SECRET} ")
    bare = Webhook(listen="127.0.0.1:0")
    assert resolve_webhook(bare).secret == WEBHOOK_SECRET
    assert resolve_webhook(Webhook(listen="127.0.0.1:0", secret="given")).secret == "given"
    monkeypatch.setenv(SECRET_ENV_VAR, " ")
    assert resolve_webhook(bare) is bare
    monkeypatch.delenv(SECRET_ENV_VAR)
    assert resolve_webhook(bare).secret is None


# -- secrets ----------------------------------------------------------------------------------------------------


def test_secret_never_in_repr() -> None:
    config = Webhook(listen="127.0.0.1:0", public_url="https://hooks.example.com", secret=WEBHOOK_SECRET)
    assert WEBHOOK_SECRET not in repr(config)
    assert "secret='***'" in repr(config)
    assert WEBHOOK_SECRET not in repr(config.__rich_repr__())
    assert "secret=None" in repr(Webhook(listen="127.0.0.1:0"))
    receiver = WebhookReceiver(get_provider("toapis"), config, on_event=lambda _: None, token=TOKEN)
    assert WEBHOOK_SECRET not in repr(receiver) and TOKEN not in repr(receiver)
    assert TOKEN not in repr(WebhookServer(receiver))


async def test_secret_token_and_bodies_never_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    body = delivery("toapis", "completed.json")
    with caplog.at_level(logging.DEBUG):
        h = Harness("toapis")
        good = h.signed(body)
        await h.post(body, good)  # accepted
        await h.post(body, good)  # duplicate
        await h.post(body, h.signed(body, secret="wrong"))  # 401
        await h.post(b'{"id":"evt_x","secret":"' + WEBHOOK_SECRET.encode() + b'"', h.signed(b"x"))  # 401
        await h.post(body, good, path="/hailuo/wrong-token-abcdefghijklmnop")  # 401
        await h.post(b"{" + WEBHOOK_SECRET.encode(), {}, method="GET")  # 405
        m = Harness("minimax")
        await m.post(b'{"task_id":"' + WEBHOOK_SECRET.encode() + b'"')  # 400
        await m.post(b" " * (MAX_BODY + 1))  # 413
    assert caplog.records, "the refusals are logged"
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        # Task ids may be logged (they are in every other log line of the library); bodies and headers may not.
        for forbidden in (WEBHOOK_SECRET, TOKEN, good[SIGNATURE_HEADER], good[TIMESTAMP_HEADER], "task_type", "{"):
            assert forbidden not in text, (forbidden, text)


def test_a_fixed_token_is_checked_hidden_and_used() -> None:
    with pytest.raises(InvalidRequestError) as info:
        Webhook(listen="127.0.0.1:0", token="short")
    assert info.value.parameter == "Webhook.token" and "short" not in str(info.value)
    hook = Webhook(listen="127.0.0.1:0", token="a-fixed-token-of-run-one")
    assert "a-fixed-token-of-run-one" not in repr(hook)
    receiver = WebhookReceiver(get_provider("apimart"), hook, on_event=lambda event: None)
    assert receiver.callback_url("http://127.0.0.1:9").endswith("/hailuo/a-fixed-token-of-run-one")
