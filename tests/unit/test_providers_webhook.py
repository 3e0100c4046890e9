"""The codecs' webhook side: where ``build_submit`` puts the callback URL, what ``parse_webhook`` reads from each
provider's deliveries (``tests/fixtures/<provider>/webhook/``), and toapis's signature check.

Wire facts: docs/providers.md, A.5, B.6 and C.7, and "Additions". All tests are pure.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hailuo_async import DecodeError, GenerationRequest, HttpResponse, InvalidRequestError, TaskState
from hailuo_async.providers import PROVIDERS, Apimart, WebhookEvent, get_provider
from hailuo_async.providers.toapis import (
    SIGNATURE_HEADER,
    SIGNATURE_TOLERANCE,
    TIMESTAMP_HEADER,
    WEBHOOK_ID_HEADER,
    sign_webhook,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
CALLBACK = "https://hooks.example.com/hailuo/3q2-token_abcdefghijklmnop"
TOAPIS = get_provider("toapis")
SECRET = "whsec-TEST-SECRET-0123456789"
NOW = 1_765_001_050.0


def webhook_fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / "webhook" / name).read_bytes()


def sent(provider_name: str, request: GenerationRequest, **kwargs: Any) -> dict[str, Any]:
    built = get_provider(provider_name).build_submit(request, **kwargs)
    decoded: dict[str, Any] = msgspec.json.decode(built.body or b"")
    return decoded


# -- build_submit -----------------------------------------------------------------------------------------------

FIELD_CASES = [
    ("apimart", ("webhook",)),
    ("toapis", ("metadata", "callback_url")),
    ("minimax", ("callback_url",)),
]


@pytest.mark.parametrize(("provider_name", "field"), FIELD_CASES)
def test_build_submit_puts_the_callback_in_the_provider_field(provider_name: str, field: tuple[str, ...]) -> None:
    request = GenerationRequest("A cat [Push in]", duration=6)
    body = sent(provider_name, request, idempotency_key="k-1", callback_url=CALLBACK)
    target: Any = body
    for key in field:
        target = target[key]
    assert target == CALLBACK
    assert get_provider(provider_name).callback_field == field
    # Nothing else moves: without the callback the body is what it was.
    without = sent(provider_name, request, idempotency_key="k-1")
    target = body
    for key in field[:-1]:
        target = target[key]
    del target[field[-1]]
    if provider_name == "toapis" and body["metadata"] == {}:
        del body["metadata"]
    assert body == without


@pytest.mark.parametrize("provider_name", sorted(PROVIDERS))
def test_build_submit_without_callback_is_unchanged(provider_name: str) -> None:
    provider = get_provider(provider_name)
    request = GenerationRequest("A cat")
    assert provider.build_submit(request, callback_url=None) == provider.build_submit(request)


def test_toapis_callback_merges_into_the_metadata_already_built() -> None:
    request = GenerationRequest(
        "A cat",
        duration=6,
        first_frame="https://example.com/a.jpg",
        last_frame="https://example.com/b.jpg",
        watermark=False,
    )
    body = sent("toapis", request, idempotency_key="8f14e45f", callback_url=CALLBACK)
    assert body["metadata"] == {
        "last_frame_image": "https://example.com/b.jpg",
        "aigc_watermark": False,
        "callback_url": CALLBACK,
    }
    assert body["client_business_id"] == "8f14e45f"  # top level, untouched


def test_apimart_callback_keeps_the_response_version_header() -> None:
    class Versioned(Apimart):
        response_version = "2026-07-27"

    built = Versioned().build_submit(GenerationRequest("A cat"), idempotency_key="k", callback_url=CALLBACK)
    assert ("X-APIMart-Response-Version", "2026-07-27") in built.headers
    assert ("Idempotency-Key", "k") in built.headers
    assert msgspec.json.decode(built.body or b"")["webhook"] == CALLBACK


@pytest.mark.parametrize("bad", ["", "hooks.example.com/x", "ftp://hooks.example.com/x", "https:///x", "https:// x"])
@pytest.mark.parametrize("provider_name", sorted(PROVIDERS))
def test_build_submit_refuses_a_callback_that_is_no_url(provider_name: str, bad: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        get_provider(provider_name).build_submit(GenerationRequest("A cat"), callback_url=bad)
    assert info.value.parameter == "callback_url"


# -- parse_webhook ----------------------------------------------------------------------------------------------


class Expected(msgspec.Struct, kw_only=True):
    kind: str = "status"
    task_id: str | None = None
    state: TaskState | None = None
    provider_status: str | None = None
    video_url: str | None = None
    file_id: str | None = None
    error: str | None = None
    event_id: str | None = None
    challenge: str | None = None


WEBHOOK_CASES = [
    (
        "apimart",
        "completed.json",
        Expected(
            task_id="task_01KBS40K78KGHZ9SDBWQSGSXRK",
            state=TaskState.COMPLETED,
            provider_status="completed",
            video_url="https://upload.apimart.ai/f/video/0-video_task_01KBS40K78KGHZ9SDBWQSGSXRK.mp4",
        ),
    ),
    (
        "apimart",
        "flat_completed.json",
        Expected(
            task_id="task_01K8SGYNNNVBQTXNR4MM964S7K",
            state=TaskState.COMPLETED,
            provider_status="completed",
            video_url="https://cdn.apimart.ai/videos/xxx.mp4",
        ),
    ),
    (
        "apimart",
        "failed.json",
        Expected(
            task_id="task_01K8SGYNNNVBQTXNR4MM964S7K",
            state=TaskState.FAILED,
            provider_status="failed",
            error="Generation failed",
        ),
    ),
    (
        "toapis",
        "completed.json",
        Expected(
            task_id="vid_6f1d0c2a9b8e4d7c",
            state=TaskState.COMPLETED,
            provider_status="completed",
            event_id="evt_01JZ8Q4W6M3K2C9T7N5B1V0XHS",
        ),
    ),
    (
        "toapis",
        "failed.json",
        Expected(
            task_id="vid_0a9b8c7d6e5f4a3b",
            state=TaskState.FAILED,
            provider_status="failed",
            error="task failed",
            event_id="evt_01JZ8Q5B2R7Y4F6H8K0M3P5S7V",
        ),
    ),
    ("toapis", "test.json", Expected(kind="test", event_id="evt_test_01JZ8Q6C9D1E2F3G4H5J6K7L8M")),
    ("minimax", "challenge.json", Expected(kind="challenge", challenge="1a3cs1j-601a-118y-ch52-o48911eabc3u")),
    (
        "minimax",
        "processing.json",
        Expected(task_id="176843862716480", state=TaskState.RUNNING, provider_status="processing"),
    ),
    (
        "minimax",
        "success.json",
        Expected(
            task_id="176843862716480",
            state=TaskState.COMPLETED,
            provider_status="success",
            file_id="176844028768320",
        ),
    ),
    (
        "minimax",
        "success_capitalised.json",
        Expected(
            task_id="176843862716480",
            state=TaskState.COMPLETED,
            provider_status="Success",
            file_id="176844028768320",
        ),
    ),
    (
        "minimax",
        "failed.json",
        Expected(
            task_id="176843862716480",
            state=TaskState.FAILED,
            provider_status="failed",
            error="input new_sensitive",
        ),
    ),
]


def test_every_webhook_fixture_has_a_case() -> None:
    on_disk = {f"{p.parent.parent.name}/{p.name}" for p in FIXTURES.glob("*/webhook/*.json")}
    assert on_disk == {f"{provider}/{name}" for provider, name, _ in WEBHOOK_CASES}


@pytest.mark.parametrize(
    ("provider_name", "name", "expected"), WEBHOOK_CASES, ids=[f"{p}-{n}" for p, n, _ in WEBHOOK_CASES]
)
def test_parse_webhook(provider_name: str, name: str, expected: Expected) -> None:
    event = get_provider(provider_name).parse_webhook(webhook_fixture(provider_name, name))
    assert isinstance(event, WebhookEvent)
    assert (event.kind, event.task_id, event.event_id, event.challenge) == (
        expected.kind,
        expected.task_id,
        expected.event_id,
        expected.challenge,
    )
    if expected.kind != "status":
        assert event.status is None
        return
    status = event.status
    assert status is not None
    assert status.state is expected.state
    assert status.provider_status == expected.provider_status
    assert (status.video_url, status.file_id, status.error) == (expected.video_url, expected.file_id, expected.error)


def test_apimart_webhook_status_is_the_full_status_answer() -> None:
    body = webhook_fixture("apimart", "completed.json")
    event = get_provider("apimart").parse_webhook(body)
    assert event.status == get_provider("apimart").parse_status(HttpResponse(status=200, body=body))
    assert event.status is not None and event.status.cost == 0.28 and event.status.expires_at == 1765087446


@pytest.mark.parametrize("word", ["success", "SUCCESS", "Success", " success "])
def test_minimax_webhook_status_in_any_case(word: str) -> None:
    body = msgspec.json.encode({"task_id": "1", "status": word, "file_id": "2", "base_resp": {"status_code": 0}})
    event = get_provider("minimax").parse_webhook(body)
    assert event.status is not None and event.status.state is TaskState.COMPLETED


@pytest.mark.parametrize(
    ("event_type", "status", "state"),
    [
        ("generation.completed", "", TaskState.COMPLETED),
        ("generation.failed", "", TaskState.FAILED),
        ("generation.completed", "COMPLETED", TaskState.COMPLETED),
        ("generation.progress", "in_progress", TaskState.RUNNING),
        ("generation.something_new", "", TaskState.RUNNING),
    ],
)
def test_toapis_webhook_state_from_status_else_event_type(event_type: str, status: str, state: TaskState) -> None:
    body = msgspec.json.encode({"id": "evt_1", "type": event_type, "data": {"task_id": "vid_1", "status": status}})
    event = TOAPIS.parse_webhook(body)
    assert event.kind == "status" and event.status is not None
    assert event.status.state is state
    assert event.status.provider_status == (status or event_type)
    assert event.status.video_url is None  # toapis never sends it: a status check follows


MALFORMED = [
    ("apimart", b""),
    ("apimart", b"<html>502</html>"),
    ("apimart", b"[]"),
    ("apimart", b'{"code":200,"data":{"status":"completed","result":{"videos":[{"url":["https://x/v.mp4"]}]}}}'),
    ("apimart", b'{"code":200,"data":{"id":"t1","status":"completed"}}'),  # completed without a video URL
    ("apimart", b'{"code":500,"error":{"message":"boom"}}'),  # an error envelope is no delivery
    ("apimart", b'{"code":200,"data":null}'),
    ("toapis", b"not json"),
    ("toapis", b'{"id":"evt_1","type":"generation.completed"}'),
    ("toapis", b'{"id":"evt_1","type":"generation.completed","data":{"status":"completed"}}'),
    ("toapis", b'{"id":"evt_1","type":"generation.completed","data":{"task_id":""}}'),
    ("toapis", b'{"id":"evt_1","type":7}'),
    ("minimax", b"{"),
    ("minimax", b'{"status":"success","file_id":"2"}'),  # no task_id
    ("minimax", b'{"task_id":"1","file_id":"2"}'),  # no status
    ("minimax", b'{"task_id":"1","status":"success","file_id":""}'),  # finished without a file
    ("minimax", b'{"task_id":"1","status":"processing","base_resp":{"status_code":1004,"status_msg":"auth"}}'),
    ("minimax", b'{"challenge":12}'),
]


@pytest.mark.parametrize(("provider_name", "body"), MALFORMED)
def test_malformed_webhook_body_is_a_decode_error(provider_name: str, body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        get_provider(provider_name).parse_webhook(body)
    assert info.value.provider == provider_name


# -- check_webhook ----------------------------------------------------------------------------------------------


def signed(
    body: bytes,
    *,
    secret: str = SECRET,
    event_id: str = "evt_1",
    timestamp: float = NOW,
    extra: tuple[str, ...] = (),
) -> dict[str, str]:
    stamp = str(int(timestamp))
    signature = ",".join((*extra, "v1=" + sign_webhook(secret, event_id, stamp, body)))
    return {WEBHOOK_ID_HEADER: event_id, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature}


BODY = webhook_fixture("toapis", "completed.json")


def test_sign_webhook_is_hmac_sha256_over_id_timestamp_body() -> None:
    expected = hmac.new(b"k", b"evt_9.1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign_webhook("k", "evt_9", "1700000000", b'{"a":1}') == expected
    assert expected == expected.lower() and len(expected) == 64


def test_check_webhook_accepts_a_good_signature() -> None:
    assert TOAPIS.check_webhook(signed(BODY), BODY, secret=SECRET, now=NOW)


def test_check_webhook_reads_header_names_in_any_case() -> None:
    headers = {name.lower(): value for name, value in signed(BODY).items()}
    assert TOAPIS.check_webhook(headers, BODY, secret=SECRET, now=NOW)
    headers = {name.upper(): value for name, value in signed(BODY).items()}
    assert TOAPIS.check_webhook(headers, BODY, secret=SECRET, now=NOW)


def test_check_webhook_accepts_either_signature_during_a_rotation() -> None:
    previous = "v1=" + sign_webhook("old-secret", "evt_1", str(int(NOW)), BODY)
    # Current secret first, previous second; the receiver may have either; either order works.
    rotated = signed(BODY)
    rotated[SIGNATURE_HEADER] = rotated[SIGNATURE_HEADER] + "," + previous
    assert TOAPIS.check_webhook(rotated, BODY, secret=SECRET, now=NOW)
    assert TOAPIS.check_webhook(rotated, BODY, secret="old-secret", now=NOW)
    spaced = dict(rotated, **{SIGNATURE_HEADER: rotated[SIGNATURE_HEADER].replace(",", ", ")})
    assert TOAPIS.check_webhook(spaced, BODY, secret="old-secret", now=NOW)
    previous_first = signed(BODY, extra=(previous,))
    assert TOAPIS.check_webhook(previous_first, BODY, secret=SECRET, now=NOW)
    assert TOAPIS.check_webhook(previous_first, BODY, secret="old-secret", now=NOW)


@pytest.mark.parametrize(
    "case",
    [
        "wrong secret",
        "body changed",
        "id changed",
        "stale",
        "future",
        "no secret",
        "empty secret",
        "no signature",
        "no id",
        "no timestamp",
        "word timestamp",
        "v2 only",
        "truncated",
    ],
)
def test_check_webhook_refuses(case: str) -> None:
    headers = signed(BODY)
    body, now = BODY, NOW
    secret: str | None = SECRET
    if case == "wrong secret":
        headers = signed(BODY, secret="another")
    elif case == "body changed":
        body = BODY.replace(b"completed", b"failed", 1)
    elif case == "id changed":
        headers[WEBHOOK_ID_HEADER] = "evt_2"
    elif case == "stale":
        now = NOW + SIGNATURE_TOLERANCE + 1
    elif case == "future":
        now = NOW - SIGNATURE_TOLERANCE - 1
    elif case == "no secret":
        secret = None
    elif case == "empty secret":
        secret = ""
    elif case == "no signature":
        del headers[SIGNATURE_HEADER]
    elif case == "no id":
        del headers[WEBHOOK_ID_HEADER]
    elif case == "no timestamp":
        del headers[TIMESTAMP_HEADER]
    elif case == "word timestamp":
        headers = signed(BODY)
        headers[TIMESTAMP_HEADER] = "now"
    elif case == "v2 only":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].replace("v1=", "v2=")
    elif case == "truncated":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER][:-2]
    assert not TOAPIS.check_webhook(headers, body, secret=secret, now=now)


def test_check_webhook_window_is_inclusive() -> None:
    for now in (NOW + SIGNATURE_TOLERANCE, NOW - SIGNATURE_TOLERANCE):
        assert TOAPIS.check_webhook(signed(BODY), BODY, secret=SECRET, now=now)


@pytest.mark.parametrize("provider_name", ["apimart", "minimax"])
def test_unsigned_providers_accept_any_delivery_here(provider_name: str) -> None:
    # Their deliveries are authenticated by the unguessable path alone (the receiver checks it).
    assert get_provider(provider_name).check_webhook({}, b"{}", secret=None, now=NOW)
