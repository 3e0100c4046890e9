"""The exception tree: attributes, messages, standard-library bases, pickling, documentation and secrecy."""

from __future__ import annotations

import ast
import builtins
import copy
import inspect
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from hailuo_async import _exceptions
from hailuo_async._batchfile import BadLine
from hailuo_async._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BatchError,
    BatchFileError,
    BudgetExceededError,
    ConnectError,
    ContentPolicyError,
    DecodeError,
    DownloadError,
    GenerationFailedError,
    GenerationTimeoutError,
    HailuoError,
    IdempotencyInProgressError,
    InsufficientBalanceError,
    InvalidRequestError,
    JournalBusyError,
    JournalError,
    NotSubmittedError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    SubmissionUncertainError,
    TransportError,
    UnexpectedRedirectError,
)
from hailuo_async._http import HttpResponse
from hailuo_async._models import Generation, GenerationRequest
from hailuo_async.providers import PROVIDERS, Provider

SECRET = "sk-TEST-SECRET-0123456789abcdef"
REQUEST = GenerationRequest("A cat [Push in]", duration=10, resolution="768p")
GENERATION = Generation(
    provider="apimart",
    task_id="task_1",
    request=REQUEST,
    video_url="https://cdn.example.com/v.mp4",
    expires_at=1765087446.0,
    submitted_at=1765000891.0,
    completed_at=1765001046.0,
)

API_ERROR_CLASSES: list[type[APIError]] = [
    APIError,
    AuthenticationError,
    InsufficientBalanceError,
    ServerError,
    BadRequestError,
    ContentPolicyError,
    UnexpectedRedirectError,
]


def sample_errors() -> list[HailuoError]:
    """One instance of every exception class, with every attribute set."""
    api_errors: list[HailuoError] = [
        cls("quota exhausted", provider="toapis", status_code=402, code="insufficient_quota", request_id="req-1")
        for cls in API_ERROR_CLASSES
    ]
    failed = GenerationFailedError("content rejected", provider="apimart", task_id="task_9", code="task_failed")
    limited = RateLimitError(
        "slow down", provider="minimax", status_code=200, code=1002, request_id="trace-1", retry_after=12.5
    )
    in_progress = IdempotencyInProgressError(
        "a request with this key is in progress",
        provider="apimart",
        status_code=409,
        code="idempotency_in_progress",
        request_id="req-2",
        retry_after=1.0,
    )
    return [
        *api_errors,
        limited,
        in_progress,
        InvalidRequestError("duration", 7, "5 or 10 seconds", provider="apimart"),
        TransportError("connection reset", maybe_sent=True),
        ConnectError("connection refused"),
        ReadTimeoutError("no answer in 30s"),
        DecodeError("unreadable", provider="apimart", snippet="<html>", task_id="task_7"),
        DownloadError("checksum mismatch", generation=GENERATION),
        SubmissionUncertainError("reset after send", request=REQUEST, provider="apimart", idempotency_key="idem-1"),
        failed,
        GenerationTimeoutError(provider="minimax", task_id="176843862716480", waited=600.25),
        NotSubmittedError("batch stopped"),
        BudgetExceededError(cap=1.0, committed=0.84, needed=0.28),
        JournalError("cannot write the journal j.sqlite: disk I/O error", path="j.sqlite"),
        JournalBusyError("another process holds the journal"),
        BatchFileError(
            "1 bad line(s) in p.jsonl:\n  line 2, field 'duration': invalid duration=7",
            source="p.jsonl",
            bad_lines=[BadLine(line=2, field="duration", message="invalid duration=7")],
            requests=[REQUEST],
            provider="apimart",
        ),
        BatchError([GENERATION, failed, limited]),
        HailuoError("base"),
    ]


def defined_exception_names() -> list[str]:
    """Class names defined in hailuo_async/_exceptions.py (read from its source, not its namespace)."""
    tree = ast.parse(Path(inspect.getfile(_exceptions)).read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef)]


# ---------------------------------------------------------------------------------------------------------------
# Attributes and messages
# ---------------------------------------------------------------------------------------------------------------


def test_invalid_request_error() -> None:
    error = InvalidRequestError("duration", 7, "5 or 10 seconds", provider="apimart")
    assert (error.parameter, error.value, error.allowed, error.provider) == (
        "duration",
        7,
        "5 or 10 seconds",
        "apimart",
    )
    assert str(error) == "invalid duration=7 for apimart: 5 or 10 seconds"
    assert isinstance(error, ValueError)
    assert isinstance(error, HailuoError)
    plain = InvalidRequestError("resolution", "720p", "one of 512p, 768p, 1080p")
    assert plain.provider is None
    assert str(plain) == "invalid resolution='720p': one of 512p, 768p, 1080p"


def test_invalid_request_error_truncates_long_values_in_message_only() -> None:
    value = "x" * 500
    error = InvalidRequestError("prompt", value, "at most 2000 characters")
    assert error.value == value
    assert len(str(error)) < 200
    assert "x" * 77 + "..." in str(error)


@pytest.mark.parametrize("cls", API_ERROR_CLASSES)
def test_api_error_attributes(cls: type[APIError]) -> None:
    error = cls("Task not found", provider="toapis", status_code=404, code="not_found_error", request_id="req-9")
    assert (error.message, error.provider, error.status_code, error.code, error.request_id) == (
        "Task not found",
        "toapis",
        404,
        "not_found_error",
        "req-9",
    )
    assert str(error) == "toapis answered HTTP 404 (code not_found_error): Task not found [request id req-9]"
    bare = cls("boom", provider="apimart", status_code=500)
    assert (bare.code, bare.request_id) == (None, None)
    assert str(bare) == "apimart answered HTTP 500: boom"
    assert isinstance(error, APIError)
    assert isinstance(error, HailuoError)


def test_rate_limit_error() -> None:
    error = RateLimitError("rate limit", provider="minimax", status_code=200, code=1002, retry_after=3.5)
    assert error.retry_after == 3.5
    assert error.code == 1002
    assert str(error) == "minimax answered HTTP 200 (code 1002): rate limit"
    assert RateLimitError("x", provider="p", status_code=429).retry_after is None


def test_api_error_subclass_relations() -> None:
    assert issubclass(ContentPolicyError, BadRequestError)
    for cls in (AuthenticationError, InsufficientBalanceError, RateLimitError, ServerError, BadRequestError,
                UnexpectedRedirectError):  # fmt: skip
        assert cls.__bases__ == (APIError,)


def test_transport_errors() -> None:
    sent = TransportError("reset", maybe_sent=True)
    assert sent.maybe_sent is True
    assert str(sent) == "reset"
    connect = ConnectError("refused")
    assert connect.maybe_sent is False
    assert isinstance(connect, TransportError)
    timeout = ReadTimeoutError("slow")
    assert timeout.maybe_sent is True
    assert isinstance(timeout, TimeoutError)
    assert isinstance(timeout, TransportError)
    assert not isinstance(connect, TimeoutError)


def test_decode_error() -> None:
    error = DecodeError("apimart: unreadable answer", provider="apimart", snippet="<html>oops")
    assert (error.provider, error.snippet) == ("apimart", "<html>oops")
    assert str(error) == "apimart: unreadable answer (body starts '<html>oops')"
    bare = DecodeError("no task id")
    assert (bare.provider, bare.snippet, str(bare)) == (None, "", "no task id")


def test_download_error() -> None:
    error = DownloadError("checksum mismatch", generation=GENERATION)
    assert error.generation is GENERATION
    assert str(error) == "checksum mismatch"
    assert DownloadError("x").generation is None


def test_submission_uncertain_error() -> None:
    error = SubmissionUncertainError("reset", request=REQUEST, provider="apimart", idempotency_key="k-1")
    assert (error.request, error.provider, error.idempotency_key) == (REQUEST, "apimart", "k-1")
    assert str(error) == "reset"
    assert SubmissionUncertainError("x", request=REQUEST, provider="minimax").idempotency_key is None


def test_generation_failed_error() -> None:
    error = GenerationFailedError("content rejected", provider="apimart", task_id="task_9", code="task_failed")
    assert (error.reason, error.provider, error.task_id, error.code) == (
        "content rejected",
        "apimart",
        "task_9",
        "task_failed",
    )
    assert str(error) == "apimart task task_9 failed: content rejected (code task_failed)"
    assert str(GenerationFailedError("cancelled", provider="p", task_id="t")) == "p task t failed: cancelled"


def test_generation_timeout_error() -> None:
    error = GenerationTimeoutError(provider="minimax", task_id="17684", waited=600.25)
    assert (error.provider, error.task_id, error.waited) == ("minimax", "17684", 600.25)
    assert isinstance(error, TimeoutError)
    assert str(error) == "minimax task 17684 still not finished after 600.2s"


def test_batch_file_error_is_an_invalid_request_error_about_the_source() -> None:
    bad = BadLine(line=3, field="duration", message="invalid duration='ten': a whole number of seconds")
    error = BatchFileError("1 bad line(s) in p.jsonl: ...", source="p.jsonl", bad_lines=[bad], requests=[REQUEST])
    assert isinstance(error, InvalidRequestError)
    assert (error.parameter, error.value, error.source, error.provider) == ("source", "p.jsonl", "p.jsonl", None)
    assert error.allowed == str(error) == "1 bad line(s) in p.jsonl: ..."
    assert (error.bad_lines, error.requests) == ([bad], [REQUEST])
    assert str(bad) == "line 3, field 'duration': invalid duration='ten': a whole number of seconds"
    assert str(BadLine(line=1, field=None, message="not valid JSON")) == "line 1: not valid JSON"
    unreadable = BatchFileError("no such file: p.txt", source="p.txt")
    assert (unreadable.bad_lines, unreadable.requests) == ([], [])


def test_journal_errors() -> None:
    error = JournalError("cannot open the journal j.sqlite: disk I/O error", path=Path("out") / "j.sqlite")
    assert error.path == str(Path("out") / "j.sqlite")
    assert JournalError("x").path is None
    assert issubclass(JournalBusyError, JournalError)
    assert JournalBusyError("busy", path="j.sqlite").path == "j.sqlite"


def test_not_submitted_error_keeps_cause() -> None:
    cause = AuthenticationError("bad key", provider="apimart", status_code=401)
    with pytest.raises(NotSubmittedError) as info:
        raise NotSubmittedError("batch stopped") from cause
    assert info.value.__cause__ is cause


def test_budget_exceeded_error_names_the_cap_the_spend_and_the_item() -> None:
    error = BudgetExceededError(cap=1.0, committed=0.84, needed=0.28)
    assert (error.cap, error.committed, error.needed, error.scope) == (1.0, 0.84, 0.28, "max_spend")
    assert str(error) == (
        "max_spend $1.00: $0.84 committed so far plus this item's estimated $0.28 would pass the cap; "
        "nothing more is submitted"
    )
    assert "$0.2928" in str(BudgetExceededError(cap=0.5, committed=0.2928, needed=0.2928))
    stopped = NotSubmittedError("not submitted")
    stopped.__cause__ = error
    assert isinstance(stopped.__cause__, BudgetExceededError)
    assert not isinstance(error, (InvalidRequestError, APIError))  # nothing was wrong with the request


def test_batch_error() -> None:
    failed = GenerationFailedError("nope", provider="apimart", task_id="t2")
    limited = RateLimitError("slow", provider="apimart", status_code=429)
    error = BatchError([GENERATION, failed, limited, GENERATION])
    assert error.results == [GENERATION, failed, limited, GENERATION]
    assert error.errors == [(1, failed), (2, limited)]
    assert str(error) == "2 of 4 items failed (GenerationFailedError, RateLimitError)"


def test_standard_library_bases() -> None:
    assert issubclass(InvalidRequestError, ValueError)
    assert issubclass(GenerationTimeoutError, TimeoutError)
    assert issubclass(ReadTimeoutError, TimeoutError)
    for name in defined_exception_names():
        assert issubclass(getattr(_exceptions, name), HailuoError)


# ---------------------------------------------------------------------------------------------------------------
# Pickling
# ---------------------------------------------------------------------------------------------------------------


def comparable(value: object) -> object:
    """Exceptions do not compare by value; compare them by type, args and attributes instead."""
    if isinstance(value, BaseException):
        return (type(value), value.args, {k: comparable(v) for k, v in vars(value).items()})
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


@pytest.mark.parametrize("error", sample_errors(), ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(
    "roundtrip",
    [
        lambda e: pickle.loads(pickle.dumps(e)),  # noqa: S301 - our own bytes
        lambda e: pickle.loads(pickle.dumps(e, protocol=0)),  # noqa: S301 - our own bytes
        copy.copy,
        copy.deepcopy,
    ],
    ids=["pickle", "pickle-0", "copy", "deepcopy"],
)
def test_round_trip_keeps_attributes(error: HailuoError, roundtrip: Callable[[HailuoError], HailuoError]) -> None:
    clone = roundtrip(error)
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.args == error.args
    assert vars(clone).keys() == vars(error).keys()
    assert comparable(clone) == comparable(error)


def test_every_exception_class_is_sampled() -> None:
    assert {type(e).__name__ for e in sample_errors()} == set(defined_exception_names())


# ---------------------------------------------------------------------------------------------------------------
# The module docstring documents the whole tree
# ---------------------------------------------------------------------------------------------------------------


def documented_tree() -> dict[str, tuple[str | None, str | None]]:
    """``{class: (documented parent, documented standard-library base)}`` read from the module docstring."""
    doc = _exceptions.__doc__
    assert doc is not None
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[str] = []
    lines = doc.splitlines()
    for line in lines[lines.index("::") + 1 :]:
        match = re.match(r"^\s*((?:│   |    )*)(?:├── |└── )?([A-Z][A-Za-z]+)(?: \((\w+)\))?(?:\s|$)", line)
        if match is None or not match.group(2).endswith("Error"):
            continue
        depth = len(match.group(1)) // 4 + (1 if ("├── " in line or "└── " in line) else 0)
        del stack[depth:]
        parent = stack[-1] if stack else None
        tree[match.group(2)] = (parent, match.group(3))
        stack.append(match.group(2))
    return tree


def test_docstring_mentions_every_exception_class() -> None:
    doc = _exceptions.__doc__ or ""
    names = defined_exception_names()
    assert len(names) >= 20
    for name in names:
        assert re.search(rf"\b{name}\b", doc), f"{name} is not in the module docstring"


def test_docstring_tree_matches_the_classes() -> None:
    tree = documented_tree()
    assert set(tree) == set(defined_exception_names())
    assert tree["HailuoError"] == (None, None)
    for name, (parent, std_base) in tree.items():
        cls = getattr(_exceptions, name)
        if parent is not None:
            assert getattr(_exceptions, parent) in cls.__bases__, f"{name} should derive from {parent}"
        if std_base is not None:
            assert issubclass(cls, getattr(builtins, std_base)), f"{name} should be a {std_base}"
    assert tree["ContentPolicyError"] == ("BadRequestError", None)
    assert tree["InvalidRequestError"] == ("HailuoError", "ValueError")


def test_module_all_lists_every_class() -> None:
    assert sorted(_exceptions.__all__) == sorted(defined_exception_names())


# ---------------------------------------------------------------------------------------------------------------
# No exception carries a credential, even when the provider echoes one back
# ---------------------------------------------------------------------------------------------------------------

ECHOES = [
    f"Invalid header Authorization: Bearer {SECRET}",
    f"bad request to /v1/tasks?key={SECRET}&language=en",
    f"signed https://cdn.example.com/v.mp4?X-Amz-Signature={SECRET}&token={SECRET}",
    f"api_key={SECRET} is not valid; bearer {SECRET}",
]


def echoed_responses(provider: Provider, echo: str) -> list[HttpResponse]:
    """Error answers of every shape the provider uses, each carrying ``echo`` where a message goes."""
    quoted = echo.replace('"', '\\"')
    bodies: list[tuple[int, str]] = [
        (401, f'{{"error": {{"code": 401, "message": "{quoted}", "type": "authentication_error"}}}}'),
        (400, f'{{"error": "{quoted}"}}'),
        (429, f'{{"message": "{quoted}"}}'),
        (502, f"<html><body>502 Bad Gateway: {echo}</body></html>"),
        (500, echo),
        (200, f"<html>{echo}</html>"),
        (401, f'{{"base_resp": {{"status_code": 1004, "status_msg": "{quoted}"}}}}'),
    ]
    if provider.name == "minimax":
        bodies.append((200, f'{{"base_resp": {{"status_code": 2049, "status_msg": "{quoted}"}}}}'))
        bodies.append((200, f'{{"task_id": "", "base_resp": {{"status_code": 1002, "status_msg": "{quoted}"}}}}'))
    if provider.name == "apimart":
        bodies.append((200, f'{{"code": 401, "message": "{quoted}"}}'))
        bodies.append((200, f'{{"code": 500, "msg": "{quoted}"}}'))
    if provider.name == "toapis":
        bodies.append((200, f'{{"success": false, "message": "{quoted}"}}'))
    return [HttpResponse(status=s, headers={"x-request-id": "req-1"}, body=b.encode()) for s, b in bodies]


def provider_parsers(provider: Provider) -> dict[str, Callable[[HttpResponse], object]]:
    found: dict[str, Callable[[HttpResponse], object]] = {
        "submit": provider.parse_submit,
        "status": provider.parse_status,
    }
    if provider.name == "minimax":
        found["fetch"] = provider.parse_fetch
    else:
        found["upload"] = provider.parse_upload
    return found


def leaked(error: BaseException) -> list[str]:
    """Every rendering of ``error`` that still contains the secret."""
    renderings = {"str": str(error), "repr": repr(error)}
    for name, value in vars(error).items():
        renderings[f".{name}"] = repr(value)
    renderings["pickle"] = pickle.dumps(error).decode("latin-1")
    return [where for where, text in renderings.items() if SECRET in text]


@pytest.mark.parametrize("provider", [pytest.param(p, id=p.name) for p in PROVIDERS.values()])
@pytest.mark.parametrize("echo", ECHOES, ids=["bearer", "key-query", "signed-url", "mixed"])
def test_codec_errors_never_carry_the_key(provider: Provider, echo: str) -> None:
    checked = 0
    leaks: list[str] = []
    for response in echoed_responses(provider, echo):
        for route, parse in provider_parsers(provider).items():
            try:
                parse(response)
            except (APIError, DecodeError) as error:
                checked += 1
                where = leaked(error)
                if where:
                    leaks.append(f"parse_{route} on HTTP {response.status} {response.body!r}: key in {where}")
            else:
                pytest.fail(f"{provider.name}.parse_{route} accepted an error answer: {response.body!r}")
    assert checked >= 20
    assert not leaks, "\n".join(leaks)
