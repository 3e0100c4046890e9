"""Codec tests on answers seen in the wild (docs/providers.md, "Additions"), beyond the documented examples.

The bodies live under ``tests/fixtures/<provider>/wild/``: apimart's newer response version (HTTP 202, ``data`` an
object), errors inside an HTTP 200, the 409 ``idempotency_in_progress`` answer, toapis look-ups by
``client_business_id``, the cost/timing/size facts of finished tasks and MiniMax's empty ``file_id`` while a task
runs. All tests are pure: no I/O beyond reading the fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from yarl import URL

from hailuo_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    DecodeError,
    GenerationRequest,
    HttpResponse,
    IdempotencyInProgressError,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    TaskState,
)
from hailuo_async.providers import Apimart, Provider, get_provider

FIXTURES = Path(__file__).parents[1] / "fixtures"
PROVIDER_NAMES = ("apimart", "toapis", "minimax")
APIMART_VIDEO = "https://upload.apimart.ai/f/video/...-video_task_01KBS40K78KGHZ9SDBWQSGSXRK.mp4"


def wild(name: str, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    """The fixture ``<provider>/wild/<file>`` as an answer; ``name`` is ``"<provider>/<file>"``."""
    provider, file = name.split("/")
    return HttpResponse(status=status, headers=headers or {}, body=(FIXTURES / provider / "wild" / file).read_bytes())


def body(value: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, body=json.dumps(value).encode())


def parse(provider: Provider, route: str, response: HttpResponse) -> object:
    parsers = {"submit": provider.parse_submit, "status": provider.parse_status, "upload": provider.parse_upload}
    return parsers[route](response)


APIMART = get_provider("apimart")
TOAPIS = get_provider("toapis")
MINIMAX = get_provider("minimax")


# -- apimart: any 2xx envelope code, both data shapes ------------------------------------------------------------


def test_apimart_submit_answered_202_by_the_newer_response_version() -> None:
    response = wild("apimart/submit_response_version_202.json", 202, {"x-apimart-response-version": "2026-07-27"})
    assert APIMART.parse_submit(response) == "task-01KAC7V3X9QH2M5R8T4W6Y1Z0B"


def test_apimart_submit_with_a_numeric_string_2xx_code_and_legacy_list() -> None:
    assert APIMART.parse_submit(wild("apimart/submit_code_string_201.json")) == "task_01KAC7W0D4JH8N2P6S9V3X5Z7C"


def test_apimart_status_answered_with_code_202() -> None:
    status = APIMART.parse_status(wild("apimart/status_response_version_pending.json"))
    assert (status.state, status.provider_status, status.progress) == (TaskState.QUEUED, "pending", 0)


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299, "202", " 202 ", 0, "0", "success", "Success", None])
@pytest.mark.parametrize("data", [[{"task_id": "t-1"}], {"id": "t-1"}, {"task_id": "t-1"}], ids=["list", "id", "tid"])
def test_apimart_success_codes_and_data_shapes(code: object, data: object) -> None:
    envelope: dict[str, Any] = {"data": data} if code is None else {"code": code, "data": data}
    assert APIMART.parse_submit(body(envelope, 202)) == "t-1"
    task = {"id": "t-1", "status": "processing", "progress": 10}
    status = APIMART.parse_status(body({"data": task} if code is None else {"code": code, "data": task}))
    assert status.state is TaskState.RUNNING


@pytest.mark.parametrize("code", [199, 300, 400, "404", 1, "failed"])
def test_apimart_other_envelope_codes_are_errors(code: object) -> None:
    with pytest.raises(APIError):
        APIMART.parse_submit(body({"code": code, "data": [{"task_id": "t-1"}]}))


class _Versioned(Apimart):
    response_version: ClassVar[str | None] = "2026-07-27"


def _header(request_headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    return {k.lower(): v for k, v in request_headers}.get(name.lower())


def test_apimart_asks_for_the_legacy_shape_by_default() -> None:
    assert Apimart.response_version is None
    submit = APIMART.build_submit(GenerationRequest("A cat"), idempotency_key="k-1")
    assert _header(submit.headers, "X-APIMart-Response-Version") is None
    assert _header(APIMART.build_status("t-1").headers, "X-APIMart-Response-Version") is None


def test_apimart_response_version_is_sent_when_chosen() -> None:
    codec = _Versioned()
    submit = codec.build_submit(GenerationRequest("A cat"), idempotency_key="k-1")
    assert _header(submit.headers, "X-APIMart-Response-Version") == "2026-07-27"
    assert _header(submit.headers, "Idempotency-Key") == "k-1"
    assert _header(submit.headers, "Content-Type") == "application/json"
    assert submit.body == APIMART.build_submit(GenerationRequest("A cat"), idempotency_key="k-1").body
    status = codec.build_status("t-1")
    assert _header(status.headers, "X-APIMart-Response-Version") == "2026-07-27"
    assert status.path == APIMART.build_status("t-1").path


# -- apimart: errors inside an HTTP 200 ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["submit", "status", "upload"])
def test_apimart_error_object_inside_http_200(route: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse(APIMART, route, wild("apimart/error_bad_request_in_200.json"))
    error = info.value
    assert error.message == "bad request"
    assert error.code == 400
    assert error.status_code == 200
    assert error.provider == "apimart"


@pytest.mark.parametrize("route", ["submit", "status", "upload"])
def test_apimart_error_inside_200_keeps_type_and_request_id(route: str) -> None:
    with pytest.raises(InsufficientBalanceError) as info:
        parse(APIMART, route, wild("apimart/error_in_200_with_type_and_request_id.json"))
    error = info.value
    assert (error.message, error.code) == ("insufficient balance, please top up", "payment_required")
    assert error.request_id == "req_01KAC80R6T2Y4U8I0O3P5A7S9D"


@pytest.mark.parametrize("route", ["submit", "status", "upload"])
def test_apimart_error_inside_200_with_a_top_level_msg(route: str) -> None:
    with pytest.raises(ServerError) as info:
        parse(APIMART, route, wild("apimart/error_in_200_message_only.json"))
    assert (info.value.message, info.value.code) == ("upstream generation service unavailable", 500)


@pytest.mark.parametrize("route", ["submit", "status", "upload"])
def test_apimart_error_without_envelope_code_inside_200(route: str) -> None:
    response = body({"error": {"code": 401, "message": "invalid token", "type": "authentication_error"}})
    with pytest.raises(AuthenticationError) as info:
        parse(APIMART, route, response)
    assert (info.value.message, info.value.code) == ("invalid token", "authentication_error")


def test_apimart_bare_failed_task_is_a_status_not_an_api_error() -> None:
    # Without the envelope, an `error` next to a status word is the task's failure reason.
    response = body({"id": "t-1", "status": "failed", "error": {"code": "task_failed", "message": "content rejected"}})
    status = APIMART.parse_status(response)
    assert (status.state, status.error, status.error_code) == (TaskState.FAILED, "content rejected", "task_failed")


# -- 409 idempotency_in_progress, from whichever provider sends it --------------------------------------------------


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
@pytest.mark.parametrize("route", ["submit", "status"])
def test_idempotency_in_progress_becomes_its_own_error(provider_name: str, route: str) -> None:
    response = wild("apimart/error_409_idempotency_in_progress.json", 409, {"retry-after": "1"})
    with pytest.raises(IdempotencyInProgressError) as info:
        parse(get_provider(provider_name), route, response)
    error = info.value
    assert error.retry_after == 1.0
    assert error.code == "idempotency_in_progress"  # the word code beats the generic `type`
    assert error.status_code == 409
    assert error.message == "A request with this Idempotency-Key is still being processed"
    assert error.request_id == "req_01KAC82M4N6B8V0C2X4Z6L8K0J"


def test_idempotency_in_progress_without_retry_after() -> None:
    with pytest.raises(IdempotencyInProgressError) as info:
        APIMART.parse_submit(wild("apimart/error_409_idempotency_in_progress.json", 409))
    assert info.value.retry_after is None


@pytest.mark.parametrize("code", ["idempotency_key_reused", "idempotency_result_indeterminate"])
def test_other_idempotency_conflicts_stay_bad_requests(code: str) -> None:
    with pytest.raises(BadRequestError) as info:
        APIMART.parse_submit(body({"error": {"code": code, "message": "conflict"}}, 409))
    assert not isinstance(info.value, IdempotencyInProgressError)
    assert info.value.code == code


# -- toapis: client_business_id and look-ups ------------------------------------------------------------------------


def test_toapis_submit_carries_the_key_as_client_business_id() -> None:
    request = GenerationRequest("A cat [Push in]", duration=6, first_frame="https://example.com/a.jpg")
    built = TOAPIS.build_submit(request, idempotency_key="8f14e45fceea167a5a36dedd4bea2543")
    sent = msgspec.json.decode(built.body or b"")
    assert sent == {**TOAPIS.submit_body(request), "client_business_id": "8f14e45fceea167a5a36dedd4bea2543"}
    assert "client_business_id" not in sent.get("metadata", {})
    assert _header(built.headers, "Idempotency-Key") is None  # toapis does not deduplicate by it
    assert not TOAPIS.honours_idempotency_key
    # Everything else is byte for byte the body sent without a key.
    keyless = TOAPIS.build_submit(request).body or b""
    assert built.body == keyless[:-1] + b',"client_business_id":"8f14e45fceea167a5a36dedd4bea2543"}'


@pytest.mark.parametrize("provider_name", ["apimart", "minimax"])
def test_other_providers_keep_the_key_out_of_the_body(provider_name: str) -> None:
    provider = get_provider(provider_name)
    request = GenerationRequest("A cat")
    built = provider.build_submit(request, idempotency_key="k-1")
    assert msgspec.json.decode(built.body or b"") == provider.submit_body(request)


def test_only_toapis_looks_submits_up() -> None:
    assert [name for name in PROVIDER_NAMES if get_provider(name).can_look_up_submits] == ["toapis"]
    with pytest.raises(NotImplementedError):
        APIMART.build_lookup("k-1")


@pytest.mark.parametrize("key", ["8f14e45fceea167a5a36dedd4bea2543", "a/b", "../v1/balance", "x?y#z", "ü 任务"])
def test_toapis_build_lookup(key: str) -> None:
    request = TOAPIS.build_lookup(key)
    assert (request.method, request.route, request.body) == ("GET", "lookup", None)
    url = URL(TOAPIS.default_base_url + request.path)
    assert url.parts == ("/", "v1", "videos", "generations", key)
    assert (dict(url.query), url.fragment) == ({}, "")


@pytest.mark.parametrize("key", ["", ".", ".."])
def test_toapis_build_lookup_refuses_unusable_keys(key: str) -> None:
    with pytest.raises(InvalidRequestError):
        TOAPIS.build_lookup(key)


def test_toapis_lookup_found_gives_the_real_task_id() -> None:
    assert TOAPIS.parse_lookup(wild("toapis/lookup_found_in_progress.json")) == "vid_01KAC8A2S4D6F8G0H2J4K6L8Z0"


def test_toapis_lookup_found_in_a_legacy_envelope() -> None:
    response = body({"code": 200, "data": {"id": "vid_legacy", "status": "queued"}})
    assert TOAPIS.parse_lookup(response) == "vid_legacy"


def test_toapis_lookup_not_found_means_no_task() -> None:
    assert TOAPIS.parse_lookup(wild("toapis/lookup_not_found.json", 404)) is None


@pytest.mark.parametrize(
    ("status", "payload", "cls"),
    [
        (404, b"<html><body><h1>404 Not Found</h1>nginx</body></html>", BadRequestError),  # a proxy, not toapis
        (404, b"", BadRequestError),
        (
            401,
            b'{"error":{"code":401,"message":"Authentication failed","type":"authentication_error"}}',
            AuthenticationError,
        ),
        (429, b'{"error":"Rate limit exceeded, retry later"}', RateLimitError),
        (500, b'{"error":{"message":"internal error"}}', ServerError),
    ],
)
def test_toapis_lookup_errors_raise(status: int, payload: bytes, cls: type[APIError]) -> None:
    with pytest.raises(cls):
        TOAPIS.parse_lookup(HttpResponse(status=status, body=payload))


@pytest.mark.parametrize("payload", [b'{"status": "queued"}', b'{"id": "", "status": "queued"}', b"not json"])
def test_toapis_lookup_without_an_id_is_a_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        TOAPIS.parse_lookup(HttpResponse(status=200, body=payload))


# -- facts of a finished task ---------------------------------------------------------------------------------------


def test_apimart_cost_credits_and_timing() -> None:
    status = APIMART.parse_status(wild("apimart/status_completed_with_cost.json"))
    assert (status.state, status.video_url, status.expires_at) == (TaskState.COMPLETED, APIMART_VIDEO, 1765087446)
    assert status.provider_facts() == {
        "cost": 0.28,
        "credits_cost": 2.8,
        "actual_time": 155,
        "finished_at": 1765001046,
        "video_width": None,
        "video_height": None,
    }


def test_apimart_video_size_from_the_result() -> None:
    status = APIMART.parse_status(wild("apimart/status_completed_video_size.json"))
    assert (status.video_width, status.video_height) == (1920, 1080)
    assert (status.actual_time, status.finished_at, status.cost) == (120, 1709876663, None)


def test_apimart_facts_in_loose_types() -> None:
    task = {"id": "t", "status": "completed", "cost": "0.49", "credits_cost": 4.9, "actual_time": "98"}
    task["result"] = {"videos": [{"url": ["https://cdn.example/v.mp4"], "width": "1920", "height": 0}]}
    status = APIMART.parse_status(body({"code": 200, "data": task}))
    assert (status.cost, status.credits_cost, status.actual_time) == (0.49, 4.9, 98.0)
    assert (status.video_width, status.video_height) == (1920, None)


def test_toapis_provider_finish_time() -> None:
    status = TOAPIS.parse_status(wild("toapis/status_completed_hailuo.json"))
    assert (status.finished_at, status.created_at, status.expires_at) == (1768380391, 1768380224, 1768466791)
    assert status.cost is None


def test_minimax_video_size_on_success() -> None:
    status = MINIMAX.parse_status(wild("minimax/query_success_1366x768.json"))
    assert (status.state, status.file_id) == (TaskState.COMPLETED, "176844028768320")
    assert (status.video_width, status.video_height) == (1366, 768)


def test_facts_are_none_while_running() -> None:
    for status in (
        APIMART.parse_status(wild("apimart/status_response_version_pending.json")),
        MINIMAX.parse_status(wild("minimax/query_processing_empty_file_id.json")),
    ):
        assert set(status.provider_facts().values()) == {None}


# -- MiniMax: an empty file_id means "not yet" ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("minimax/query_processing_empty_file_id.json", TaskState.RUNNING),
        ("minimax/query_queueing_empty_file_id.json", TaskState.QUEUED),
    ],
)
def test_minimax_empty_file_id_while_running(name: str, state: TaskState) -> None:
    status = MINIMAX.parse_status(wild(name))
    assert (status.state, status.file_id, status.video_width, status.video_height) == (state, None, None, None)


def test_minimax_success_with_an_empty_file_id_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        MINIMAX.parse_status(wild("minimax/query_success_empty_file_id.json"))
    assert info.value.task_id == "176843862716480"  # the paid task can still be found by id
    assert info.value.provider == "minimax"


def test_minimax_blank_file_id_is_absent() -> None:
    response = body({"task_id": "1", "status": "Processing", "file_id": "  ", "base_resp": {"status_code": 0}})
    assert MINIMAX.parse_status(response).file_id is None


# -- upload expiry ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expires_at"),
    [
        ({"url": "https://upload.apimart.ai/f/image/a.jpg", "created_at": 1743436800}, 1743436800 + 72 * 3600),
        ({"url": "https://upload.apimart.ai/f/image/a.jpg", "expires_at": 1743500000, "created_at": 1}, 1743500000),
        ({"url": "https://upload.apimart.ai/f/image/a.jpg"}, None),
    ],
)
def test_apimart_upload_expiry(answer: dict[str, Any], expires_at: float | None) -> None:
    assert APIMART.parse_upload(body(answer)) == ("https://upload.apimart.ai/f/image/a.jpg", expires_at)


# -- bookkeeping ----------------------------------------------------------------------------------------------------


def test_every_wild_fixture_is_used_and_valid_json() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    paths = sorted(FIXTURES.glob("*/wild/*.json"))
    assert {path.parent.parent.name for path in paths} == set(PROVIDER_NAMES)
    for path in paths:
        assert f'"{path.parent.parent.name}/{path.name}"' in source, f"{path} is not used"
        json.loads(path.read_bytes())


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_retry_after_is_read_whatever_its_case(name: str) -> None:
    # The aiohttp transport lower-cases header names; a hand-built answer (MockTransport handler) may not.
    response = wild("apimart/error_409_idempotency_in_progress.json", 409, {name: "2"})
    with pytest.raises(IdempotencyInProgressError) as info:
        APIMART.parse_submit(response)
    assert info.value.retry_after == 2.0
