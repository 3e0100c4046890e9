"""Table-driven tests of the three provider codecs against the documented wire shapes (docs/providers.md).

Every JSON body directly under ``tests/fixtures/<provider>/`` is an example or drift shape the providers document
(docs/providers.md, sections A to C); the tables below say what each one must decode to. Section numbers in the
comments (A.3, B.4, ...) are those of docs/providers.md. All tests are pure: codecs build :class:`HttpRequest`
values and read :class:`HttpResponse` values without any I/O.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from yarl import URL

from hailuo_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    DecodeError,
    GenerationRequest,
    HttpRequest,
    HttpResponse,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    TaskState,
    TaskStatus,
    UnexpectedRedirectError,
)
from hailuo_async.providers import MODEL, PROVIDERS, Provider, get_provider, map_status_word

FIXTURES = Path(__file__).parents[1] / "fixtures"
PROVIDER_NAMES = ("apimart", "toapis", "minimax")

Parser = Callable[[HttpResponse], object]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def answer(name: str, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status=status, headers=dict(headers or {}), body=fixture(name))


def parsers(provider: Provider) -> dict[str, Parser]:
    """Every parse_* function the provider implements (the ones the engine calls for it)."""
    found: dict[str, Parser] = {"submit": provider.parse_submit, "status": provider.parse_status}
    if provider.name == "minimax":
        found["fetch"] = provider.parse_fetch
    else:
        found["upload"] = provider.parse_upload
    return found


ALL_PARSERS = [
    pytest.param(name, route, id=f"{name}-{route}") for name in PROVIDER_NAMES for route in parsers(PROVIDERS[name])
]


def parse_with(provider_name: str, route: str, response: HttpResponse) -> object:
    return parsers(get_provider(provider_name))[route](response)


# ---------------------------------------------------------------------------------------------------------------
# parse_submit
# ---------------------------------------------------------------------------------------------------------------

SUBMIT_CASES = [
    ("apimart/submit.json", "task_01K8SGYNNNVBQTXNR4MM964S7K"),
    ("apimart/submit_object_data.json", "task_01K8SGYNNNVBQTXNR4MM964S7K"),
    ("toapis/submit.json", "vid_01K8SGYNNNVBQTXNR4MM964S7K"),
    ("toapis/submit_legacy.json", "task_01K8SGYNNNVBQTXNR4MM964S7K"),
    ("minimax/submit.json", "106916112212032"),
]


@pytest.mark.parametrize(("name", "task_id"), SUBMIT_CASES, ids=[c[0] for c in SUBMIT_CASES])
def test_parse_submit(name: str, task_id: str) -> None:
    provider = get_provider(name.split("/")[0])
    assert provider.parse_submit(answer(name)) == task_id


@pytest.mark.parametrize(
    ("provider_name", "body", "task_id"),
    [
        ("apimart", b'{"code": 200, "data": [{"status": "submitted", "task_id": 12345}]}', "12345"),
        ("apimart", b'{"code": "200", "data": [{"task_id": "t1"}, {"task_id": "t2"}]}', "t1"),
        ("toapis", b'{"id": 987, "object": "generation.task", "status": "queued"}', "987"),
        ("toapis", b'{"task_id": "vid_x", "status": "queued"}', "vid_x"),
        (
            "minimax",
            b'{"task_id": 106916112212032, "base_resp": {"status_code": 0, "status_msg": "success"}}',
            "106916112212032",
        ),
        ("minimax", b'{"task_id": "1", "base_resp": {"status_code": "0", "status_msg": "success"}}', "1"),
    ],
)
def test_parse_submit_loose_types(provider_name: str, body: bytes, task_id: str) -> None:
    assert get_provider(provider_name).parse_submit(HttpResponse(status=200, body=body)) == task_id


@pytest.mark.parametrize(
    ("provider_name", "body"),
    [
        ("apimart", b'{"code": 200, "data": []}'),
        ("apimart", b'{"code": 200, "data": [{"status": "submitted"}]}'),
        ("apimart", b'{"code": 200, "data": [{"task_id": ""}]}'),
        ("apimart", b"{}"),
        ("toapis", b'{"object": "generation.task", "status": "queued"}'),
        ("toapis", b'{"id": ""}'),
        ("minimax", b'{"base_resp": {"status_code": 0, "status_msg": "success"}}'),
        ("minimax", b'{"task_id": "", "base_resp": {"status_code": 0, "status_msg": "success"}}'),
    ],
)
def test_parse_submit_without_task_id_is_decode_error(provider_name: str, body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        get_provider(provider_name).parse_submit(HttpResponse(status=200, body=body))
    assert info.value.provider == provider_name


# ---------------------------------------------------------------------------------------------------------------
# parse_status
# ---------------------------------------------------------------------------------------------------------------


class StatusCase(NamedTuple):
    fixture: str
    state: TaskState
    provider_status: str
    progress: int | None = None
    video_url: str | None = None
    expires_at: float | None = None
    error: str | None = None
    error_code: str | int | None = None
    file_id: str | None = None


Q, R, C, F = TaskState.QUEUED, TaskState.RUNNING, TaskState.COMPLETED, TaskState.FAILED
APIMART_VIDEO = "https://upload.apimart.ai/f/video/...-video_task_01KBS40K78KGHZ9SDBWQSGSXRK.mp4"
MINIMAX_FILE = "176844028768320"

STATUS_CASES = [
    # apimart (docs/providers.md, A.3)
    StatusCase("apimart/status_queued.json", Q, "pending"),
    StatusCase("apimart/status_running.json", R, "processing", progress=91),
    StatusCase("apimart/status_completed.json", C, "completed", 100, APIMART_VIDEO, 1765087446),
    StatusCase(
        "apimart/status_completed_url_string.json", C, "completed", 100, "https://cdn.apimart.ai/videos/xxx.mp4"
    ),
    StatusCase("apimart/status_failed.json", F, "failed", error="content rejected"),
    StatusCase("apimart/status_failed_error_object.json", F, "failed", 0, error="Generation failed", error_code=500),
    StatusCase("apimart/status_failed_webhook.json", F, "failed", error="Generation failed", error_code="task_failed"),
    StatusCase("apimart/status_cancelled.json", F, "cancelled", 40, error="cancelled"),
    StatusCase("apimart/drift_submitted.json", Q, "submitted", 0),
    StatusCase("apimart/drift_queued.json", Q, "queued"),
    StatusCase("apimart/drift_in_progress.json", R, "in_progress", 35),
    StatusCase("apimart/drift_mixed_case.json", R, "Processing", 12),
    StatusCase("apimart/drift_unknown_word.json", R, "moderation_pending", 5),
    # toapis (docs/providers.md, B.3)
    StatusCase("toapis/status_queued.json", Q, "queued", 0),
    StatusCase("toapis/status_in_progress.json", R, "in_progress", 65),
    StatusCase(
        "toapis/status_completed.json",
        C,
        "completed",
        100,
        "https://files.dashlyai.cc/sora/7712af45-....mp4",
        1768466914,
    ),
    StatusCase(
        "toapis/status_completed_result_url.json",
        C,
        "completed",
        100,
        "https://files.toapis.com/videos/hailuo-02.mp4",
        1768466914,
    ),
    StatusCase(
        "toapis/status_completed_top_url.json", C, "completed", 100, "https://files.toapis.com/videos/top-level.mp4"
    ),
    StatusCase(
        "toapis/status_failed.json",
        F,
        "failed",
        0,
        error="Generation failed: Content violates the content policy",
        error_code="generation_failed",
    ),
    StatusCase("toapis/status_failed_string_error.json", F, "failed", 0, error="Generation failed"),
    StatusCase("toapis/drift_submitted.json", Q, "submitted", 0),
    StatusCase("toapis/drift_pending.json", Q, "pending"),
    StatusCase("toapis/drift_mixed_case.json", R, "IN_PROGRESS", 50),
    StatusCase("toapis/drift_unknown_word.json", R, "moderation_pending", 0),
    # MiniMax (docs/providers.md, C.3)
    StatusCase("minimax/query_preparing.json", Q, "Preparing"),
    StatusCase("minimax/query_queueing.json", Q, "Queueing"),
    StatusCase("minimax/query_processing.json", R, "Processing"),
    StatusCase("minimax/query_success.json", C, "Success", file_id=MINIMAX_FILE),
    StatusCase("minimax/query_success_numeric_file_id.json", C, "Success", file_id=MINIMAX_FILE),
    StatusCase("minimax/query_fail.json", F, "Fail", error="task failed"),
    StatusCase("minimax/query_fail_base_resp.json", F, "Fail", error="input new_sensitive", error_code=1026),
    StatusCase("minimax/drift_failed_word.json", F, "Failed", error="task failed"),
    StatusCase("minimax/drift_error_word.json", F, "Error", error="task failed"),
    StatusCase("minimax/drift_callback_lowercase.json", C, "success", file_id=MINIMAX_FILE),
    StatusCase("minimax/drift_mixed_case.json", R, "PROCESSING"),
    StatusCase("minimax/drift_unknown_word.json", R, "moderation_pending"),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=[c.fixture for c in STATUS_CASES])
def test_parse_status(case: StatusCase) -> None:
    status = get_provider(case.fixture.split("/")[0]).parse_status(answer(case.fixture))
    assert isinstance(status, TaskStatus)
    got = (
        status.state,
        status.provider_status,
        status.progress,
        status.video_url,
        status.expires_at,
        status.error,
        status.error_code,
        status.file_id,
    )
    want = (
        case.state,
        case.provider_status,
        case.progress,
        case.video_url,
        case.expires_at,
        case.error,
        case.error_code,
        case.file_id,
    )
    assert got == want
    assert status.state.terminal is (case.state in (C, F))


def test_apimart_status_reads_eta_and_created() -> None:
    status = get_provider("apimart").parse_status(answer("apimart/status_running.json"))
    assert status.eta == 600
    assert status.created_at == 1765000891


def test_toapis_status_reads_created_at() -> None:
    status = get_provider("toapis").parse_status(answer("toapis/status_completed.json"))
    assert status.created_at == 1768380222


# Status words from docs/providers.md, "Mapping status words", in every provider's shape.
DRIFT_WORDS: list[tuple[str, TaskState]] = [
    ("submitted", Q),
    ("pending", Q),
    ("queued", Q),
    ("Preparing", Q),
    ("Queueing", Q),
    ("QUEUED", Q),
    ("processing", R),
    ("in_progress", R),
    ("Processing", R),
    ("In_Progress", R),
    ("completed", C),
    ("Completed", C),
    ("Success", C),
    ("success", C),
    ("failed", F),
    ("Failed", F),
    ("FAILED", F),
    ("Fail", F),
    ("Error", F),
    ("cancelled", F),
    ("moderation_pending", R),
    ("upscaling", R),
    ("Unknown-Word", R),
]
UNKNOWN_WORDS = frozenset({"moderation_pending", "upscaling", "Unknown-Word"})


def status_body(provider_name: str, word: str) -> bytes:
    """A status answer in the provider's documented shape carrying ``word`` (and a result, for success words)."""
    url = "https://cdn.example.com/v.mp4"
    body: dict[str, Any]
    if provider_name == "apimart":
        body = {"code": 200, "data": {"id": "t", "status": word, "result": {"videos": [{"url": [url]}]}}}
    elif provider_name == "toapis":
        body = {"id": "t", "object": "generation.task", "status": word, "result": {"data": [{"url": url}]}}
    else:
        body = {"task_id": "t", "status": word, "file_id": "f1", "base_resp": {"status_code": 0}}
    return json.dumps(body).encode()


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
@pytest.mark.parametrize(("word", "state"), DRIFT_WORDS, ids=[w for w, _ in DRIFT_WORDS])
def test_status_word_drift(provider_name: str, word: str, state: TaskState) -> None:
    status = get_provider(provider_name).parse_status(HttpResponse(status=200, body=status_body(provider_name, word)))
    assert status.state is state
    assert status.provider_status == word
    if state is TaskState.FAILED:
        assert status.error
    else:
        assert status.error is None


@pytest.mark.parametrize(("word", "state"), DRIFT_WORDS, ids=[w for w, _ in DRIFT_WORDS])
def test_map_status_word(word: str, state: TaskState) -> None:
    # An unknown word maps to None in the table; parse_status turns that into RUNNING (keep polling).
    expected = None if word in UNKNOWN_WORDS else state
    assert map_status_word(word) is expected
    assert map_status_word(f"  {word.swapcase()} ") is expected


@pytest.mark.parametrize(
    ("provider_name", "body"),
    [
        ("apimart", b'{"code": 200, "data": {"id": "t", "status": "completed", "progress": 100}}'),
        ("apimart", b'{"code": 200, "data": {"id": "t", "status": "completed", "result": {"videos": []}}}'),
        ("apimart", b'{"code": 200, "data": {"id": "t", "status": "completed", "result": {"videos": [{"url": []}]}}}'),
        ("apimart", b'{"code": 200, "data": {"id": "t", "status": "completed", "result": {"videos": [{"url": ""}]}}}'),
        ("toapis", b'{"id": "t", "status": "completed", "result": {"type": "video", "data": []}}'),
        ("toapis", b'{"id": "t", "status": "completed"}'),
        ("minimax", b'{"task_id": "t", "status": "Success", "base_resp": {"status_code": 0}}'),
        ("minimax", b'{"task_id": "t", "status": "Success", "file_id": "", "base_resp": {"status_code": 0}}'),
    ],
)
def test_completed_without_result_is_decode_error(provider_name: str, body: bytes) -> None:
    with pytest.raises(DecodeError):
        get_provider(provider_name).parse_status(HttpResponse(status=200, body=body))


@pytest.mark.parametrize(
    ("provider_name", "body"),
    [
        ("apimart", b'{"code": 200, "data": null}'),
        ("apimart", b"{}"),
        ("toapis", b'{"id": "t"}'),
        ("minimax", b'{"task_id": "t", "base_resp": {"status_code": 0, "status_msg": "success"}}'),
    ],
)
def test_status_without_status_word_is_decode_error(provider_name: str, body: bytes) -> None:
    with pytest.raises(DecodeError):
        get_provider(provider_name).parse_status(HttpResponse(status=200, body=body))


# ---------------------------------------------------------------------------------------------------------------
# parse_fetch (MiniMax) and parse_upload (apimart, toapis)
# ---------------------------------------------------------------------------------------------------------------

FETCH_CASES = [
    ("minimax/retrieve.json", "www.downloadurl.com"),
    (
        "minimax/retrieve_numeric_file_id.json",
        "https://video-product.cdn.minimax.io/inference_output/video/2025-01-01/abc/output.mp4",
    ),
]


@pytest.mark.parametrize(("name", "url"), FETCH_CASES, ids=[c[0] for c in FETCH_CASES])
def test_parse_fetch(name: str, url: str) -> None:
    assert get_provider("minimax").parse_fetch(answer(name)) == (url, None)


@pytest.mark.parametrize(
    "body",
    [
        b'{"base_resp": {"status_code": 0, "status_msg": "success"}}',
        b'{"file": {"file_id": 1}, "base_resp": {"status_code": 0, "status_msg": "success"}}',
        b'{"file": {"file_id": 1, "download_url": ""}, "base_resp": {"status_code": 0}}',
    ],
)
def test_parse_fetch_without_url_is_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        get_provider("minimax").parse_fetch(HttpResponse(status=200, body=body))


UPLOAD_CASES = [
    # apimart: the URL works 72 h from its created_at (docs/providers.md, A.6); toapis does not say (B.5)
    (
        "apimart/upload.json",
        "https://upload.apimart.ai/f/image/9990000123456-a1b2c3d4-photo.jpg",
        1743436800 + 72 * 3600,
    ),
    ("toapis/upload.json", "https://files.toapis.com/uploads/123/1737568800_abc12345.jpg", None),
]


@pytest.mark.parametrize(("name", "url", "expires_at"), UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_parse_upload(name: str, url: str, expires_at: float | None) -> None:
    assert get_provider(name.split("/")[0]).parse_upload(answer(name)) == (url, expires_at)


@pytest.mark.parametrize(
    ("provider_name", "body"),
    [
        ("apimart", b'{"filename": "photo.jpg"}'),
        ("apimart", b'{"url": ""}'),
        ("toapis", b'{"success": true, "message": "", "data": {"id": "upload_1", "url": ""}}'),
        ("toapis", b'{"success": true, "message": ""}'),
    ],
)
def test_parse_upload_without_url_is_refused(provider_name: str, body: bytes) -> None:
    # An upload answer without a usable URL must never be handed back as the frame to send.
    with pytest.raises((DecodeError, APIError)):
        get_provider(provider_name).parse_upload(HttpResponse(status=200, body=body))


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("toapis/upload_error_type.json", 400),
        ("toapis/upload_error_size.json", 400),
        ("toapis/upload_error_type.json", 200),
    ],
)
def test_toapis_upload_errors(name: str, status: int) -> None:
    with pytest.raises(BadRequestError) as info:
        get_provider("toapis").parse_upload(answer(name, status))
    assert info.value.message == json.loads(fixture(name))["message"]
    assert info.value.provider == "toapis"


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
def test_fetch_and_upload_only_where_documented(provider_name: str) -> None:
    provider = get_provider(provider_name)
    ok = HttpResponse(status=200, body=b"{}")
    if provider_name == "minimax":
        with pytest.raises(NotImplementedError):
            provider.build_upload("a.png", "image/png", b"x")
        with pytest.raises(NotImplementedError):
            provider.parse_upload(ok)
        assert provider.upload_limit is None
    else:
        with pytest.raises(NotImplementedError):
            provider.build_fetch("f")
        with pytest.raises(NotImplementedError):
            provider.parse_fetch(ok)
        assert provider.upload_limit is not None


# ---------------------------------------------------------------------------------------------------------------
# Error bodies -> exception classes
# ---------------------------------------------------------------------------------------------------------------


class ErrorCase(NamedTuple):
    fixture: str
    http_status: int
    cls: type[APIError]
    code: str | int | None
    message: str


ERROR_CASES = [
    # apimart (docs/providers.md, A.4): the `type` string is the most specific code the body carries
    ErrorCase("apimart/error_400.json", 400, BadRequestError, "invalid_request_error", "无效的任务ID"),
    ErrorCase(
        "apimart/error_401.json", 401, AuthenticationError, "authentication_error", "身份验证失败，请检查您的API密钥"
    ),
    ErrorCase(
        "apimart/error_402.json", 402, InsufficientBalanceError, "payment_required", "账户余额不足，请充值后再试"
    ),
    ErrorCase(
        "apimart/error_403.json", 403, AuthenticationError, "permission_error", "访问被禁止，您没有权限访问此资源"
    ),
    ErrorCase("apimart/error_429.json", 429, RateLimitError, "rate_limit_error", "请求过于频繁，请稍后再试"),
    ErrorCase("apimart/error_500.json", 500, ServerError, "server_error", "服务器内部错误，请稍后重试"),
    ErrorCase("apimart/error_502.json", 502, ServerError, "bad_gateway", "网关错误，服务器暂时不可用"),
    ErrorCase(
        "apimart/error_500_build_request_failed.json",
        500,
        ServerError,
        "server_error",
        "build_request_failed: invalid size: 4096x4096",
    ),
    # ... and a word `code` is more specific than the `type`
    ErrorCase("apimart/error_full_form.json", 400, BadRequestError, "invalid_value", "invalid resolution"),
    # toapis (docs/providers.md, B.4)
    ErrorCase("toapis/error_404.json", 404, BadRequestError, "not_found_error", "Task not found"),
    ErrorCase(
        "toapis/error_401.json",
        401,
        AuthenticationError,
        "authentication_error",
        "Authentication failed, please check your API key",
    ),
    ErrorCase(
        "toapis/error_422.json",
        422,
        ContentPolicyError,
        "content_policy_violation",
        "Prompt rejected by the content safety system",
    ),
    ErrorCase("toapis/error_string_form.json", 429, RateLimitError, None, "Rate limit exceeded, retry later"),
    ErrorCase("toapis/error_message_form.json", 402, InsufficientBalanceError, None, "Insufficient quota"),
    ErrorCase(
        "toapis/upload_error_type.json",
        400,
        BadRequestError,
        None,
        "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF",
    ),
    # MiniMax (docs/providers.md, C.6): errors arrive as HTTP 200 with a non-zero base_resp.status_code
    ErrorCase("minimax/error_1002.json", 200, RateLimitError, 1002, "rate limit"),
    ErrorCase("minimax/error_1004.json", 200, AuthenticationError, 1004, "not authorized"),
    ErrorCase("minimax/error_1008.json", 200, InsufficientBalanceError, 1008, "insufficient balance"),
    ErrorCase("minimax/error_1026.json", 200, ContentPolicyError, 1026, "input new_sensitive"),
    ErrorCase("minimax/error_2013.json", 200, BadRequestError, 2013, "invalid params"),
    ErrorCase("minimax/error_2049.json", 200, AuthenticationError, 2049, "invalid api key"),
    # ... and sometimes with a matching HTTP status too (docs/providers.md, C.6: "HTTP status vs base_resp")
    ErrorCase("minimax/error_1004.json", 401, AuthenticationError, 1004, "not authorized"),
    ErrorCase("minimax/error_1002.json", 429, RateLimitError, 1002, "rate limit"),
    ErrorCase("minimax/error_2013.json", 400, BadRequestError, 2013, "invalid params"),
    ErrorCase("minimax/error_1008.json", 400, InsufficientBalanceError, 1008, "insufficient balance"),
]


def error_routes(case: ErrorCase) -> list[str]:
    provider = PROVIDERS[case.fixture.split("/")[0]]
    return list(parsers(provider))


@pytest.mark.parametrize(
    ("case", "route"),
    [
        pytest.param(case, route, id=f"{case.fixture}@{case.http_status}-{route}")
        for case in ERROR_CASES
        for route in error_routes(case)
    ],
)
def test_error_body_raises_matching_exception(case: ErrorCase, route: str) -> None:
    provider_name = case.fixture.split("/")[0]
    request_id_header = "trace-id" if provider_name == "minimax" else "x-request-id"
    response = answer(case.fixture, case.http_status, {request_id_header: "rid-42"})
    with pytest.raises(APIError) as info:
        parse_with(provider_name, route, response)
    error = info.value
    assert type(error) is case.cls
    assert error.provider == provider_name
    assert error.status_code == case.http_status
    assert error.code == case.code
    assert error.message == case.message
    assert error.request_id == "rid-42"
    assert case.message in str(error)
    assert "rid-42" in str(error)
    if isinstance(error, RateLimitError):
        assert error.retry_after is None  # no Retry-After header was sent


def test_request_id_from_body_when_no_header() -> None:
    with pytest.raises(BadRequestError) as info:
        get_provider("apimart").parse_status(answer("apimart/error_full_form.json", 400))
    assert info.value.request_id == "req_01K8SGYNNNVBQTXNR4MM964S7K"


@pytest.mark.parametrize("header", ["x-request-id", "request-id", "trace-id", "x-trace-id", "x-amzn-requestid"])
def test_request_id_headers(header: str) -> None:
    response = answer("apimart/error_500.json", 500, {header: "abc-123"})
    assert response.request_id == "abc-123"
    with pytest.raises(ServerError) as info:
        get_provider("apimart").parse_status(response)
    assert info.value.request_id == "abc-123"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": " 12.5 "}, 12.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "86400"}, 300.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
@pytest.mark.parametrize(
    ("provider_name", "name", "status"),
    [
        ("apimart", "apimart/error_429.json", 429),
        ("toapis", "toapis/error_string_form.json", 429),
        ("minimax", "minimax/error_1002.json", 200),
        ("minimax", "minimax/error_1002.json", 429),
    ],
)
def test_rate_limit_retry_after_seconds(
    provider_name: str, name: str, status: int, headers: dict[str, str], expected: float | None
) -> None:
    with pytest.raises(RateLimitError) as info:
        get_provider(provider_name).parse_submit(answer(name, status, headers))
    assert info.value.retry_after == expected


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
def test_rate_limit_retry_after_http_date(provider_name: str) -> None:
    name = {"apimart": "apimart/error_429.json", "toapis": "toapis/error_string_form.json"}.get(
        provider_name, "minimax/error_1002.json"
    )
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(RateLimitError) as info:
        get_provider(provider_name).parse_status(answer(name, 429, {"retry-after": when}))
    assert info.value.retry_after is not None
    assert 117.0 <= info.value.retry_after <= 121.0
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    with pytest.raises(RateLimitError) as info:
        get_provider(provider_name).parse_status(answer(name, 429, {"retry-after": past}))
    assert info.value.retry_after == 0.0


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (422, b'{"error": {"code": 422, "message": "nope", "type": "content_policy_violation"}}', ContentPolicyError),
        (400, b'{"error": {"message": "Prompt violates our content policy"}}', ContentPolicyError),
        (400, b'{"error": {"message": "input new_sensitive"}}', ContentPolicyError),
        (400, b'{"error": {"message": "bad duration", "type": "invalid_request_error"}}', BadRequestError),
        (404, b"", BadRequestError),
        (413, b'{"error": {"message": "file too large"}}', BadRequestError),
        (503, b'{"error": {"code": "idempotency_unavailable", "message": "request not executed"}}', ServerError),
        (504, b"", ServerError),
    ],
)
@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
def test_status_code_classes(provider_name: str, status: int, body: bytes, cls: type[APIError]) -> None:
    with pytest.raises(APIError) as info:
        get_provider(provider_name).parse_status(HttpResponse(status=status, body=body))
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.message  # never empty, even for an empty body


@pytest.mark.parametrize(
    ("body", "cls", "code"),
    [
        (b'{"code": 401, "msg": "invalid token"}', AuthenticationError, 401),
        (b'{"code": 402, "message": "no credit"}', InsufficientBalanceError, 402),
        (b'{"code": "429", "message": "slow down"}', RateLimitError, "429"),
        (b'{"code": 500, "message": "boom"}', ServerError, 500),
        (b'{"code": 400, "message": "bad"}', BadRequestError, 400),
        (b'{"code": "weird", "message": "?"}', ServerError, "weird"),
    ],
)
@pytest.mark.parametrize("route", ["submit", "status"])
def test_apimart_envelope_error_at_http_200(route: str, body: bytes, cls: type[APIError], code: str | int) -> None:
    with pytest.raises(APIError) as info:
        parse_with("apimart", route, HttpResponse(status=200, body=body))
    assert type(info.value) is cls
    assert info.value.code == code
    assert info.value.provider == "apimart"


def assert_no_msgspec_chain(error: BaseException) -> None:
    """No msgspec error is the cause, nor a context a traceback would show (``raise ... from None`` hides it)."""
    assert not isinstance(error.__cause__, msgspec.MsgspecError)
    assert error.__suppress_context__ or not isinstance(error.__context__, msgspec.MsgspecError)


HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize(("provider_name", "route"), ALL_PARSERS)
def test_html_502_is_server_error(provider_name: str, route: str) -> None:
    response = HttpResponse(status=502, headers={"content-type": "text/html"}, body=HTML_502)
    with pytest.raises(ServerError) as info:
        parse_with(provider_name, route, response)
    error = info.value
    assert error.status_code == 502
    assert error.provider == provider_name
    assert "502 Bad Gateway" in error.message
    assert_no_msgspec_chain(error)


@pytest.mark.parametrize(
    "body",
    [b"<html><body>maintenance</body></html>", b"not json at all", b'{"code": 200, "data": ', b"\xff\xfe\x00garbage"],
)
@pytest.mark.parametrize(("provider_name", "route"), ALL_PARSERS)
def test_garbage_200_is_decode_error_with_snippet(provider_name: str, route: str, body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        parse_with(provider_name, route, HttpResponse(status=200, body=body))
    error = info.value
    assert error.provider == provider_name
    assert error.snippet
    assert error.snippet == body[:200].decode("utf-8", "replace")
    assert_no_msgspec_chain(error)


def test_decode_error_snippet_is_bounded() -> None:
    with pytest.raises(DecodeError) as info:
        get_provider("toapis").parse_status(HttpResponse(status=200, body=b"x" * 10_000))
    assert info.value.snippet == "x" * 200


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
@pytest.mark.parametrize(("provider_name", "route"), ALL_PARSERS)
def test_redirect_is_unexpected_redirect_error(provider_name: str, route: str, status: int) -> None:
    response = HttpResponse(status=status, headers={"location": "https://evil.example/steal"}, body=b"")
    with pytest.raises(UnexpectedRedirectError) as info:
        parse_with(provider_name, route, response)
    assert info.value.status_code == status
    assert info.value.provider == provider_name
    assert isinstance(info.value, APIError)


def test_minimax_redirect_with_error_body_stays_redirect() -> None:
    response = answer("minimax/error_1004.json", 302, {"location": "https://evil.example/"})
    with pytest.raises(UnexpectedRedirectError):
        get_provider("minimax").parse_status(response)


# ---------------------------------------------------------------------------------------------------------------
# build_submit
# ---------------------------------------------------------------------------------------------------------------


def submit_json(provider_name: str, request: GenerationRequest, key: str | None = None) -> dict[str, Any]:
    built = get_provider(provider_name).build_submit(request, idempotency_key=key)
    assert built.body is not None
    decoded = json.loads(built.body)
    assert isinstance(decoded, dict)
    return decoded


def assert_no_nulls(value: object, where: str = "$") -> None:
    assert value is not None, f"null at {where}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert_no_nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_no_nulls(item, f"{where}[{index}]")


DAY = "https://example.com/day.jpg"
NIGHT = "https://example.com/night.jpg"


def test_apimart_submit_body_matches_documented_case_4() -> None:
    request = GenerationRequest(
        "Scene gradually transitions from day to night, sky color changing",
        duration=10,
        resolution="768P",
        first_frame=DAY,
        last_frame=NIGHT,
        prompt_optimizer=True,
    )
    assert submit_json("apimart", request) == {
        "model": "MiniMax-Hailuo-02",
        "prompt": "Scene gradually transitions from day to night, sky color changing",
        "duration": 10,
        "resolution": "768p",
        "first_frame_image": DAY,
        "last_frame_image": NIGHT,
        "prompt_optimizer": True,
    }


@pytest.mark.parametrize("resolution", ["512p", "768P", "1080p", " 1080P "])
def test_apimart_submit_body_top_level_options(resolution: str) -> None:
    request = GenerationRequest(
        "A cat [Push in]",
        duration=5,
        resolution=resolution,
        prompt_optimizer=False,
        fast_pretreatment=True,
        watermark=True,
    )
    assert submit_json("apimart", request) == {
        "model": MODEL,
        "prompt": "A cat [Push in]",
        "duration": 5,
        "resolution": resolution.strip().lower(),
        "prompt_optimizer": False,
        "fast_pretreatment": True,
        "watermark": True,
    }


def test_apimart_submit_body_image_to_video_data_uri() -> None:
    data_uri = "data:image/jpeg;base64," + "QUJD" * 30
    body = submit_json("apimart", GenerationRequest(first_frame=data_uri))
    assert body["first_frame_image"] == data_uri
    assert "metadata" not in body
    assert "image_urls" not in body
    assert isinstance(body["prompt"], str)  # apimart requires the field; never null


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            GenerationRequest(
                "City night scene, neon lights flickering, traffic flowing [Push in]", duration=6, resolution="1080P"
            ),
            {
                "model": "MiniMax-Hailuo-02",
                "prompt": "City night scene, neon lights flickering, traffic flowing [Push in]",
                "duration": 6,
                "resolution": "1080P",
            },
        ),
        (
            GenerationRequest(
                "A little girl grows up",
                first_frame="https://example.com/child.jpg",
                duration=6,
                resolution="1080p",
                last_frame="https://example.com/adult.jpg",
            ),
            {
                "model": "MiniMax-Hailuo-02",
                "prompt": "A little girl grows up",
                "image_urls": ["https://example.com/child.jpg"],
                "duration": 6,
                "resolution": "1080P",
                "metadata": {"last_frame_image": "https://example.com/adult.jpg"},
            },
        ),
        (
            GenerationRequest(
                "Waves crashing on the beach at sunset, golden light shimmering on the water",
                duration=10,
                resolution="768p",
                prompt_optimizer=True,
                fast_pretreatment=True,
            ),
            {
                "model": "MiniMax-Hailuo-02",
                "prompt": "Waves crashing on the beach at sunset, golden light shimmering on the water",
                "duration": 10,
                "resolution": "768P",
                "metadata": {"prompt_optimizer": True, "fast_pretreatment": True},
            },
        ),
        (
            GenerationRequest(first_frame=DAY, resolution="512p", watermark=False),
            {
                "model": "MiniMax-Hailuo-02",
                "resolution": "512P",
                "image_urls": [DAY],
                "metadata": {"aigc_watermark": False},
            },
        ),
        (
            GenerationRequest("x", watermark=True, prompt_optimizer=False),
            {
                "model": "MiniMax-Hailuo-02",
                "prompt": "x",
                "metadata": {"prompt_optimizer": False, "aigc_watermark": True},
            },
        ),
    ],
    ids=["t2v-1080P", "first-last-frame", "metadata-options", "i2v-no-prompt", "watermark"],
)
def test_toapis_submit_body(request_: GenerationRequest, expected: dict[str, Any]) -> None:
    # The documented body, plus the per-item key toapis can look the task up by (top level).
    key = "8f14e45fceea167a5a36dedd4bea2543"
    assert submit_json("toapis", request_, key) == {**expected, "client_business_id": key}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            GenerationRequest(
                "A man picks up a book [Pedestal up], then reads [Static shot]", duration=6, resolution="768p"
            ),
            {
                "model": "MiniMax-Hailuo-02",
                "prompt": "A man picks up a book [Pedestal up], then reads [Static shot]",
                "duration": 6,
                "resolution": "768P",
            },
        ),
        (
            GenerationRequest(
                "She turns",
                first_frame=DAY,
                last_frame=NIGHT,
                duration=10,
                resolution="768p",
                prompt_optimizer=True,
                fast_pretreatment=False,
                watermark=True,
            ),
            {
                "model": "MiniMax-Hailuo-02",
                "prompt": "She turns",
                "duration": 10,
                "resolution": "768P",
                "first_frame_image": DAY,
                "last_frame_image": NIGHT,
                "prompt_optimizer": True,
                "fast_pretreatment": False,
                "aigc_watermark": True,
            },
        ),
        (
            GenerationRequest(first_frame="data:image/png;base64," + "iVBORw0KGgo" * 8, resolution="512P"),
            {
                "model": "MiniMax-Hailuo-02",
                "resolution": "512P",
                "first_frame_image": "data:image/png;base64," + "iVBORw0KGgo" * 8,
            },
        ),
    ],
    ids=["documented-example", "all-options", "i2v-data-uri-no-prompt"],
)
def test_minimax_submit_body(request_: GenerationRequest, expected: dict[str, Any]) -> None:
    assert submit_json("minimax", request_) == expected


NEWER_MODEL_BODIES = [
    (
        "apimart",
        GenerationRequest("A kite", model="MiniMax-Hailuo-2.3", duration=6, resolution="1080P", first_frame=DAY),
        {"model": "MiniMax-Hailuo-2.3", "prompt": "A kite", "duration": 6, "resolution": "1080p",
         "first_frame_image": DAY},
    ),
    (
        "toapis",
        GenerationRequest("A kite", model="minimax-hailuo-2.3-fast", duration=10, first_frame=DAY),
        {"model": "MiniMax-Hailuo-2.3-Fast", "prompt": "A kite", "duration": 10, "image_urls": [DAY]},
    ),
    (
        "minimax",
        GenerationRequest("A kite [Push in]", model="MiniMax-Hailuo-2.3", resolution="768p"),
        {"model": "MiniMax-Hailuo-2.3", "prompt": "A kite [Push in]", "resolution": "768P"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("provider_name", "request_", "expected"), NEWER_MODEL_BODIES, ids=["apimart", "toapis", "minimax"]
)
def test_newer_model_submit_bodies(provider_name: str, request_: GenerationRequest, expected: dict[str, Any]) -> None:
    # The same fields as Hailuo-02's, with the request's model (docs/providers.md, "Newer models per provider").
    get_provider(provider_name).validate(request_)
    body = submit_json(provider_name, request_)
    body.pop("client_business_id", None)
    assert body == expected


REQUESTS = [
    GenerationRequest("Just a prompt"),
    GenerationRequest(first_frame=DAY),
    GenerationRequest("p", first_frame=DAY, last_frame=NIGHT),
    GenerationRequest("p", duration=10, resolution="768p", watermark=False, prompt_optimizer=None),
]


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
@pytest.mark.parametrize("request_", REQUESTS, ids=["t2v", "i2v", "flf", "options"])
def test_submit_request_shape(provider_name: str, request_: GenerationRequest) -> None:
    provider = get_provider(provider_name)
    built = provider.build_submit(request_)
    assert isinstance(built, HttpRequest)
    assert built.method == "POST"
    assert built.route == "submit"
    assert built.path == {"apimart": "/v1/videos/generations", "toapis": "/v1/videos/generations"}.get(
        provider_name, "/v1/video_generation"
    )
    headers = dict(built.headers)
    assert headers["Content-Type"] == "application/json"
    assert "Authorization" not in headers  # the transport adds credentials, never the codec
    body = submit_json(provider_name, request_)
    assert body["model"] == "MiniMax-Hailuo-02"
    assert_no_nulls(body)
    assert "first_frame" not in body
    assert "last_frame" not in body
    assert "watermark_" not in body


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
def test_idempotency_key_only_for_apimart(provider_name: str) -> None:
    provider = get_provider(provider_name)
    request = GenerationRequest("A cat")
    with_key = {k.lower(): v for k, v in provider.build_submit(request, idempotency_key="key-123").headers}
    without_key = {k.lower(): v for k, v in provider.build_submit(request).headers}
    assert "idempotency-key" not in without_key
    if provider_name == "apimart":
        assert provider.honours_idempotency_key
        assert with_key["idempotency-key"] == "key-123"
    else:
        assert not provider.honours_idempotency_key
        assert "idempotency-key" not in with_key


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
@pytest.mark.parametrize(
    ("first", "last", "parameter", "value"),
    [
        ("start.jpg", None, "first_frame", "start.jpg"),
        (str(Path("/tmp/frames/start.png")), None, "first_frame", str(Path("/tmp/frames/start.png"))),
        (DAY, "end.png", "last_frame", "end.png"),
    ],
)
def test_build_submit_refuses_local_files(
    provider_name: str, first: str, last: str | None, parameter: str, value: str
) -> None:
    request = GenerationRequest("p", first_frame=first, last_frame=last)
    get_provider(provider_name).validate(request)  # local files pass validation: they are uploaded/inlined first
    with pytest.raises(InvalidRequestError) as info:
        get_provider(provider_name).build_submit(request)
    assert info.value.parameter == parameter
    assert info.value.value == value


# ---------------------------------------------------------------------------------------------------------------
# build_status / build_fetch / build_upload
# ---------------------------------------------------------------------------------------------------------------

BASE_URLS = {name: PROVIDERS[name].default_base_url for name in PROVIDER_NAMES}
HOSTILE_IDS = [
    "task_01KBS40K78KGHZ9SDBWQSGSXRK",
    "176843862716480",
    "../x?y",
    "../../v1/balance",
    "a/b",
    "x#frag",
    "?language=zh",
    "&task_id=other",
    "a b+c",
    "ü-ß-任务",
    "%2e%2e",
    "%2F",
    "..",
    ".",
]


def sent_url(provider_name: str, request: HttpRequest) -> URL:
    """The URL the transport would send ``request`` to (base URL + path, parsed as aiohttp does)."""
    return URL(BASE_URLS[provider_name] + request.path)


@pytest.mark.parametrize("task_id", HOSTILE_IDS)
def test_apimart_build_status(task_id: str) -> None:
    if task_id in (".", ".."):  # dot segments would be collapsed by URL normalisation: refused outright
        with pytest.raises(InvalidRequestError, match="task_id"):
            get_provider("apimart").build_status(task_id)
        return
    request = get_provider("apimart").build_status(task_id)
    assert (request.method, request.route, request.body) == ("GET", "status", None)
    url = sent_url("apimart", request)
    assert url.host == "api.apimart.ai"
    assert url.parts == ("/", "v1", "tasks", task_id)
    assert dict(url.query) == {"language": "en"}
    assert url.fragment == ""


@pytest.mark.parametrize("task_id", HOSTILE_IDS)
def test_toapis_build_status(task_id: str) -> None:
    if task_id in (".", ".."):  # dot segments would be collapsed by URL normalisation: refused outright
        with pytest.raises(InvalidRequestError, match="task_id"):
            get_provider("toapis").build_status(task_id)
        return
    request = get_provider("toapis").build_status(task_id)
    assert (request.method, request.route, request.body) == ("GET", "status", None)
    url = sent_url("toapis", request)
    assert url.host == "toapis.com"
    assert url.parts == ("/", "v1", "videos", "generations", task_id)
    assert dict(url.query) == {}
    assert url.fragment == ""


@pytest.mark.parametrize("task_id", HOSTILE_IDS)
def test_minimax_build_status(task_id: str) -> None:
    request = get_provider("minimax").build_status(task_id)
    assert (request.method, request.route, request.body) == ("GET", "status", None)
    url = sent_url("minimax", request)
    assert url.host == "api.minimax.io"
    assert url.path == "/v1/query/video_generation"
    assert list(url.query.items()) == [("task_id", task_id)]
    assert url.fragment == ""


@pytest.mark.parametrize("file_id", HOSTILE_IDS)
def test_minimax_build_fetch(file_id: str) -> None:
    request = get_provider("minimax").build_fetch(file_id)
    assert (request.method, request.route, request.body) == ("GET", "retrieve", None)
    url = sent_url("minimax", request)
    assert url.path == "/v1/files/retrieve"
    assert list(url.query.items()) == [("file_id", file_id)]
    assert url.fragment == ""


def test_build_status_documented_paths() -> None:
    assert get_provider("apimart").build_status("task-unified-1757156493-imcg5zqt").path == (
        "/v1/tasks/task-unified-1757156493-imcg5zqt?language=en"
    )
    assert get_provider("toapis").build_status("vid_01K8SGYNNNVBQTXNR4MM964S7K").path == (
        "/v1/videos/generations/vid_01K8SGYNNNVBQTXNR4MM964S7K"
    )
    assert get_provider("minimax").build_status("176843862716480").path == (
        "/v1/query/video_generation?task_id=176843862716480"
    )
    assert get_provider("minimax").build_fetch("176844028768320").path == "/v1/files/retrieve?file_id=176844028768320"


@pytest.mark.parametrize("provider_name", ["apimart", "toapis"])
@pytest.mark.parametrize("filename", ["photo.jpg", '../../etc/pa"ss\r\nX-Evil: 1.png', "ünïcode image.webp", ""])
def test_build_upload_multipart(provider_name: str, filename: str) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    request = get_provider(provider_name).build_upload(filename, "image/png", data)
    assert (request.method, request.path, request.route) == ("POST", "/v1/uploads/images", "upload")
    content_type = dict(request.headers)["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=", 1)[1].encode()
    assert request.body is not None
    assert request.body.startswith(b"--" + boundary + b"\r\n")
    assert request.body.endswith(b"--" + boundary + b"--\r\n")
    assert data in request.body
    head = request.body.split(b"\r\n\r\n" + data)[0]
    disposition = [line for line in head.split(b"\r\n") if b'name="file"' in line]
    assert len(disposition) == 1
    # The filename is sanitised: it cannot break out of its quoted header value or add header lines.
    quoted = disposition[0].split(b'filename="', 1)[1]
    assert quoted.count(b'"') == 1
    assert quoted.endswith(b'"')
    assert b"X-Evil" not in head.split(b"\r\n")[0]
    assert not any(line.startswith(b"X-Evil") for line in head.split(b"\r\n"))
    assert b"Content-Type: image/png" in head
    if provider_name == "toapis":
        assert b'name="purpose"\r\n\r\ngeneration\r\n' in request.body


# ---------------------------------------------------------------------------------------------------------------
# Registry and fixture bookkeeping
# ---------------------------------------------------------------------------------------------------------------


def test_registry() -> None:
    assert sorted(PROVIDERS) == ["apimart", "minimax", "toapis"]
    for name in PROVIDER_NAMES:
        provider = get_provider(name)
        assert provider.name == name
        assert get_provider(f" {name.upper()} ") is provider
    assert get_provider("apimart").durations == (5, 10)
    assert get_provider("toapis").durations == (6, 10)
    assert get_provider("minimax").durations == (6, 10)
    with pytest.raises(InvalidRequestError) as info:
        get_provider("fal")
    assert info.value.parameter == "provider"
    assert "apimart" in str(info.value)
    assert "toapis" in str(info.value)
    assert "minimax" in str(info.value)


def test_every_fixture_is_used_and_valid_json() -> None:
    used = (
        {name for name, _ in SUBMIT_CASES}
        | {case.fixture for case in STATUS_CASES}
        | {name for name, _ in FETCH_CASES}
        | {name for name, _, _ in UPLOAD_CASES}
        | {case.fixture for case in ERROR_CASES}
        | {"toapis/upload_error_size.json"}
    )
    on_disk = {str(path.relative_to(FIXTURES)) for path in FIXTURES.glob("*/*.json")}
    assert on_disk == used
    for name in on_disk:
        json.loads(fixture(name))
    assert {name.split("/")[0] for name in on_disk} == set(PROVIDER_NAMES)
