"""Property tests: whatever a provider sends, a codec answers with a value or one of the library's exceptions.

Each property runs 200 examples without a deadline and without Hypothesis' example database (nothing is written
to the working tree).
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hailuo_async._exceptions import APIError, DecodeError, InvalidRequestError, RateLimitError
from hailuo_async._http import MAX_RETRY_AFTER, HttpResponse, parse_retry_after, redact
from hailuo_async._models import GenerationRequest, TaskState, TaskStatus
from hailuo_async.providers import PROVIDERS, Provider

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

Parser = Callable[[HttpResponse], object]


def parsers(provider: Provider) -> dict[str, Parser]:
    found: dict[str, Parser] = {"submit": provider.parse_submit, "status": provider.parse_status}
    if provider.name == "minimax":
        found["fetch"] = provider.parse_fetch
    else:
        found["upload"] = provider.parse_upload
    return found


PROVIDER_PARAMS = [pytest.param(provider, id=provider.name) for provider in PROVIDERS.values()]


# -- strategies -------------------------------------------------------------------------------------------------

KEYS = (
    "status", "data", "result", "url", "urls", "videos", "base_resp", "status_code", "status_msg", "error", "code",
    "message", "msg", "type", "task_id", "id", "file_id", "file", "download_url", "progress", "expires_at",
    "estimated_time", "created", "created_at", "success", "request_id", "object",
)  # fmt: skip
STATUS_WORDS = (
    "submitted", "pending", "queued", "processing", "in_progress", "completed", "failed", "cancelled", "Preparing",
    "Queueing", "Processing", "Success", "Fail", "Failed", "Error", "SUCCESS", "moderation_pending", "",
)  # fmt: skip
SPECIAL_NUMBERS = (0, -1, 100, 101, 200, 1002, 1004, 1026, 2013, 2049, 10**20, -(10**20), 1e308, -1e308, 1e-300)

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(STATUS_WORDS),
    st.sampled_from(SPECIAL_NUMBERS),
    st.sampled_from(("https://cdn.example.com/v.mp4", "0", "100", "50.5", "nan", "inf", "-5", "1e999")),
)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
keyed_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=30,
)
keyed_bodies = st.dictionaries(st.sampled_from(KEYS), keyed_values, max_size=8)
header_names = st.sampled_from(("retry-after", "retry-after-ms", "x-request-id", "trace-id", "content-type"))
headers_st = st.dictionaries(header_names, st.text(max_size=40), max_size=3)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


# -- the property ---------------------------------------------------------------------------------------------


def check_all(provider: Provider, response: HttpResponse) -> None:
    """Feed ``response`` to every parse_* function of ``provider`` (generating a body costs far more than parsing)."""
    for route, parse in parsers(provider).items():
        try:
            check_outcome(parse, response)
        except Exception as error:
            raise AssertionError(f"{provider.name}.parse_{route} on {response!r}: {error!r}") from error


def check_outcome(parse: Parser, response: HttpResponse) -> None:
    """Only the library's exceptions escape, and whatever comes back is well formed."""
    raised: DecodeError | APIError | None = None
    try:
        result = parse(response)
    except (DecodeError, APIError) as error:
        raised = error
    if raised is not None:
        check_error(raised)
        return
    assert 200 <= response.status < 300
    if isinstance(result, TaskStatus):
        assert isinstance(result.state, TaskState)
        assert result.progress is None or (isinstance(result.progress, int) and 0 <= result.progress <= 100)
        if result.state is TaskState.COMPLETED:
            assert non_empty_str(result.video_url) or non_empty_str(result.file_id)
        if result.state is TaskState.FAILED:
            assert non_empty_str(result.error)
    elif isinstance(result, tuple):  # parse_fetch
        url, expires_at = result
        assert non_empty_str(url)
        assert expires_at is None or isinstance(expires_at, float)
    else:  # a task id or an uploaded image's URL
        assert non_empty_str(result)


def non_empty_str(value: object) -> bool:
    return isinstance(value, str) and value != ""


def check_error(error: DecodeError | APIError) -> None:
    assert str(error)
    assert repr(error)
    if isinstance(error, APIError):
        assert isinstance(error.status_code, int)
        assert non_empty_str(error.message)
    if isinstance(error, RateLimitError):
        assert error.retry_after is None or 0.0 <= error.retry_after <= MAX_RETRY_AFTER


@pytest.mark.parametrize("provider", PROVIDER_PARAMS)
@FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes(provider: Provider, body: bytes) -> None:
    check_all(provider, HttpResponse(status=200, body=body))


@pytest.mark.parametrize("provider", PROVIDER_PARAMS)
@FUZZ
@given(value=json_values)
def test_arbitrary_json(provider: Provider, value: Any) -> None:
    check_all(provider, HttpResponse(status=200, body=encode(value)))


@pytest.mark.parametrize("provider", PROVIDER_PARAMS)
@FUZZ
@given(body=keyed_bodies, headers=headers_st)
@example(body={"url": ""}, headers={})
@example(body={"status": "completed", "result": {"videos": [{"url": []}]}}, headers={})
@example(body={"code": 200, "data": {"status": "Success", "progress": "1e999"}}, headers={})
def test_json_with_real_keys(provider: Provider, body: dict[str, Any], headers: dict[str, str]) -> None:
    check_all(provider, HttpResponse(status=200, headers=headers, body=encode(body)))


@pytest.mark.parametrize("provider", PROVIDER_PARAMS)
@FUZZ
@given(
    status=st.integers(min_value=300, max_value=599),
    body=st.one_of(st.binary(max_size=200), keyed_bodies.map(encode)),
    headers=headers_st,
)
def test_error_statuses_raise_api_error(provider: Provider, status: int, body: bytes, headers: dict[str, str]) -> None:
    response = HttpResponse(status=status, headers=headers, body=body)
    for route, parse in parsers(provider).items():
        with pytest.raises(APIError) as info:
            parse(response)
        assert info.value.status_code == status, route
        assert info.value.provider == provider.name, route
    check_all(provider, response)


# -- Retry-After ----------------------------------------------------------------------------------------------

retry_after_text = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.floats().map(str),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.sampled_from(
        (
            "Fri, 31 Dec 9999 23:59:59 -2359",
            "Mon, 01 Jan 0001 00:00:00 +2359",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 +9999",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "1e999",
            "-1e999",
            "nan",
            "  42  ",
            "",
        )
    ),
)


@FUZZ
@given(
    value=retry_after_text,
    name=st.sampled_from(("retry-after", "retry-after-ms")),
    now=st.none() | st.floats(min_value=-1e12, max_value=1e12),
)
def test_parse_retry_after_never_raises(value: str, name: str, now: float | None) -> None:
    result = parse_retry_after({name: value}, now=now)
    assert result is None or (isinstance(result, float) and 0.0 <= result <= MAX_RETRY_AFTER <= 300.0)
    assert result is None or not math.isnan(result)


@FUZZ
@given(ms=retry_after_text, seconds=retry_after_text)
def test_parse_retry_after_both_headers(ms: str, seconds: str) -> None:
    result = parse_retry_after({"retry-after-ms": ms, "retry-after": seconds})
    assert result is None or 0.0 <= result <= 300.0


# -- GenerationRequest ----------------------------------------------------------------------------------------

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=50),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=30).map(pathlib.PurePosixPath),
)
prompts = st.one_of(
    anything,
    st.text(alphabet=st.sampled_from("[], PanlefthushinZomSk\x00 "), max_size=60),
    st.sampled_from(("[Push in]", "[Pan left, Pedestal up]", "x" * 2000, "x" * 2001, "", "  ")),
)
durations = st.one_of(anything, st.sampled_from((5, 6, 10, None)))
resolutions = st.one_of(anything, st.sampled_from(("512p", "768P", " 1080p ", "720p", None)))
frames = st.one_of(
    anything,
    st.sampled_from(
        (
            "https://example.com/a.jpg",
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
            "data:image/gif;base64,R0lGOD",
            "data:",
            "start.png",
            None,
        )
    ),
    st.text(max_size=20).map(lambda s: "data:image/png;base64," + s),
)
flags = st.one_of(st.none(), st.booleans(), anything)


@FUZZ
@given(
    prompt=prompts,
    duration=durations,
    resolution=resolutions,
    first_frame=frames,
    last_frame=frames,
    prompt_optimizer=flags,
    fast_pretreatment=flags,
    watermark=flags,
)
def test_generation_request_raises_only_invalid_request_error(
    prompt: Any,
    duration: Any,
    resolution: Any,
    first_frame: Any,
    last_frame: Any,
    prompt_optimizer: Any,
    fast_pretreatment: Any,
    watermark: Any,
) -> None:
    refused: InvalidRequestError | None = None
    try:
        request = GenerationRequest(
            prompt,
            duration=duration,
            resolution=resolution,
            first_frame=first_frame,
            last_frame=last_frame,
            prompt_optimizer=prompt_optimizer,
            fast_pretreatment=fast_pretreatment,
            watermark=watermark,
        )
    except InvalidRequestError as error:
        refused = error
    if refused is not None:
        assert isinstance(refused, ValueError)
        assert str(refused).startswith("invalid ")
        return
    assert request.duration in (None, 5, 6, 10)
    assert not isinstance(request.duration, bool)
    assert request.resolution in (None, "512p", "768p", "1080p")
    assert request.first_frame is None or isinstance(request.first_frame, str)
    assert request.last_frame is None or (isinstance(request.last_frame, str) and request.first_frame is not None)
    assert request.prompt is None or (isinstance(request.prompt, str) and len(request.prompt) <= 2000)
    if request.first_frame is None:
        assert isinstance(request.prompt, str)
        assert request.prompt.strip()
    for flag in (request.prompt_optimizer, request.fast_pretreatment, request.watermark):
        assert flag is None or isinstance(flag, bool)
    for provider in PROVIDERS.values():
        try:
            provider.validate(request)
        except InvalidRequestError:
            continue


# -- redact ---------------------------------------------------------------------------------------------------

tokens = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=8, max_size=40)
# Text around the planted secret: arbitrary, or pieces that look like other secret markers.
surroundings = st.lists(
    st.one_of(
        st.text(max_size=15),
        st.sampled_from(
            ("Authorization: ", "Bearer ", "token=", "key=", "?api_key=", "&sig=", " ", '"', "'", ",", "\n", "=")
        ),
    ),
    max_size=4,
).map("".join)
planted = st.sampled_from(("Bearer {}", "bearer  {}", "BEARER\t{}", "?key={}", "&api_key={}", "apikey={}", "token={}"))


@FUZZ
@given(before=surroundings, template=planted, token=tokens, after=surroundings)
@example(before="Authorization: ", template="Bearer {}", token="TEST-SECRET-0123456789", after='"}')
@example(before="token=", template="Bearer {}", token="TEST-SECRET-0123456789", after="")
def test_redact_never_lets_a_planted_key_through(before: str, template: str, token: str, after: str) -> None:
    secret = "sk-" + token
    text = before + template.format(secret) + after
    masked = redact(text)
    assert secret not in masked
    assert redact(masked) == masked  # idempotent


@FUZZ
@given(text=st.text(max_size=200), secret=tokens)
def test_redact_masks_explicit_secrets(text: str, secret: str) -> None:
    masked = redact(text[: len(text) // 2] + secret + text[len(text) // 2 :], secret)
    assert secret not in masked
