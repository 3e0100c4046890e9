"""Batch files: a .txt, .jsonl or .csv file (or stdin) read into validated :class:`GenerationRequest` objects.

Data flow: text -> the format's parser (one line -> one dict of fields) -> :class:`GenerationRequest` (its own
validation) -> with a provider, that provider's rules and its local frame images -> the requests, or one
:class:`BatchFileError` listing every bad line. Nothing is sent; the requests go to the client as any others do
(``hailuo batch`` reads its FILE here).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec

from ._exceptions import BatchFileError, InvalidRequestError
from ._images import inspect_image
from ._models import MODELS, GenerationRequest, frame_kind
from .providers import Provider, get_provider

__all__ = ["MAX_LISTED_BAD_LINES", "BadLine", "BatchFormat", "check_request", "format_bad_lines", "load_requests"]

BatchFormat = Literal["txt", "jsonl", "csv"]

MAX_LISTED_BAD_LINES = 20
"""Bad lines a message lists before the rest are only counted (:attr:`BatchFileError.bad_lines` has them all)."""

_FORMATS: tuple[BatchFormat, ...] = ("txt", "jsonl", "csv")
_REQUEST_FIELDS: tuple[str, ...] = GenerationRequest.__struct_fields__
_BOOL_FIELDS = ("prompt_optimizer", "fast_pretreatment", "watermark")
_TRUE = ("true", "1", "yes", "y", "on")
_FALSE = ("false", "0", "no", "n", "off")
_FRAME_FIELDS = ("first_frame", "last_frame")

_EXPECTED: dict[str, str] = {
    "prompt": "text",
    "model": "a model name, as text: " + ", ".join(MODELS),
    "duration": "a whole number of seconds: 5 or 10 (apimart), 6 or 10 (toapis, minimax)",
    "resolution": "one of 512p, 768p, 1080p (any case)",
    "first_frame": "a URL, a data: URI or a file path, as text",
    "last_frame": "a URL, a data: URI or a file path, as text",
    **dict.fromkeys(_BOOL_FIELDS, "true or false"),
}
"""What each field of a batch line takes, in the words of the library's own validation errors."""


class BadLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a batch file that is not a valid request; ``str()`` reads ``line 3, field 'duration': ...``."""

    line: int
    """Its number in the file, from 1."""
    field: str | None
    """The field at fault, when one is (``None`` for a line that is not JSON, a malformed CSV row...)."""
    message: str

    def __str__(self) -> str:
        return f"line {self.line}" + (f", field {self.field!r}" if self.field else "") + f": {self.message}"


def format_bad_lines(bad_lines: Sequence[BadLine]) -> str:
    """``bad_lines`` one a line, indented, the first :data:`MAX_LISTED_BAD_LINES` in full and the rest counted."""
    shown = [f"  {bad}" for bad in bad_lines[:MAX_LISTED_BAD_LINES]]
    more = len(bad_lines) - MAX_LISTED_BAD_LINES
    return "\n".join([*shown, f"  ... and {more} more"] if more > 0 else shown)


class _LineProblem(Exception):
    """Why one line of a batch file cannot be a request."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    @classmethod
    def invalid(cls, error: InvalidRequestError) -> _LineProblem:
        return cls(error.parameter, str(error))


# -- from fields to a request ---------------------------------------------------------------------------------


def _bool_cell(field: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _LineProblem.invalid(InvalidRequestError(field, value, "true/false, 1/0 or yes/no"))


def _int_cell(field: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _LineProblem.invalid(InvalidRequestError(field, value, _EXPECTED[field])) from None


def _build_request(fields: dict[str, Any], defaults: Mapping[str, Any]) -> GenerationRequest:
    for name, value in defaults.items():
        if fields.get(name) is None and value is not None:
            fields[name] = value
    try:
        return msgspec.convert(fields, GenerationRequest)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, InvalidRequestError):
            raise _LineProblem.invalid(cause) from None
        # A value of the wrong JSON type: msgspec says "Expected `int | null`, got `str` - at `$.duration`";
        # say it the way every other validation error does.
        found = re.search(r"at `\$\.(\w+)`", str(exc))
        if found is None or found.group(1) not in fields:
            raise _LineProblem(None, f"not a valid request ({exc})") from None
        field = found.group(1)
        error = InvalidRequestError(field, fields[field], _EXPECTED.get(field, "a value of another type"))
        raise _LineProblem.invalid(error) from None


def _check_fields(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in _REQUEST_FIELDS]
    if unknown:
        raise _LineProblem(unknown[0], f"unknown field {unknown[0]!r} (fields: {', '.join(_REQUEST_FIELDS)})")


# -- one parser per format: (line number, request or problem) for each line that is not blank -----------------

_Parsed = Iterator[tuple[int, GenerationRequest | _LineProblem]]


def _parse_lines(text: str, defaults: Mapping[str, Any], fields_of: Callable[[str], dict[str, Any]]) -> _Parsed:
    """One request per line, from ``fields_of(line)``; blank lines and ``#`` comments skipped."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            yield number, _build_request(fields_of(line), defaults)
        except _LineProblem as problem:
            yield number, problem


def _txt_fields(line: str) -> dict[str, Any]:
    return {"prompt": line}


def _jsonl_fields(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _LineProblem(None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(value, str):
        return {"prompt": value}
    if not isinstance(value, dict):
        raise _LineProblem(None, f"expected a JSON object (or a prompt string), got {type(value).__name__}")
    _check_fields(list(value))
    return dict(value)


def _parse_txt(text: str, defaults: Mapping[str, Any]) -> _Parsed:
    return _parse_lines(text, defaults, _txt_fields)


def _parse_jsonl(text: str, defaults: Mapping[str, Any]) -> _Parsed:
    return _parse_lines(text, defaults, _jsonl_fields)


def _csv_header(row: list[str]) -> list[str]:
    header = [cell.strip().lower() for cell in row]
    if not any(header):
        raise _LineProblem(None, "the first row must name the columns (e.g. prompt,duration)")
    _check_fields(header)
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise _LineProblem(duplicates[0], f"column {duplicates[0]!r} appears twice")
    return header


def _csv_fields(header: list[str], row: list[str]) -> dict[str, Any]:
    if len(row) > len(header):
        raise _LineProblem(None, f"{len(row)} cells but the header names {len(header)} columns")
    fields: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=False):
        if not cell.strip():
            continue
        if name == "duration":
            fields[name] = _int_cell(name, cell)
        elif name in _BOOL_FIELDS:
            fields[name] = _bool_cell(name, cell)
        else:
            fields[name] = cell.strip()
    return fields


def _parse_csv(text: str, defaults: Mapping[str, Any]) -> _Parsed:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    try:
        for row in reader:
            number = reader.line_num
            try:
                if header is None:
                    header = _csv_header(row)
                elif any(cell.strip() for cell in row):
                    yield number, _build_request(_csv_fields(header, row), defaults)
            except _LineProblem as problem:
                yield number, problem
                if header is None:
                    return  # without a usable header no row can be read
    except csv.Error as exc:
        yield reader.line_num, _LineProblem(None, f"malformed CSV: {exc}")


_PARSERS: dict[BatchFormat, Callable[[str, Mapping[str, Any]], _Parsed]] = {
    "txt": _parse_txt,
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
}


# -- checks against a provider --------------------------------------------------------------------------------


def check_request(
    request: GenerationRequest,
    provider: Provider,
    *,
    image_checks: dict[tuple[str, str], InvalidRequestError | None] | None = None,
) -> None:
    """Check ``request`` against ``provider``'s rules and read its local frame images (blocking); raises
    :class:`InvalidRequestError`. ``image_checks`` remembers each file's verdict across the requests of a batch."""
    provider.validate(request)
    checks = {} if image_checks is None else image_checks
    for name in _FRAME_FIELDS:
        value = getattr(request, name)
        if value is None or frame_kind(value) != "file":
            continue
        key = (name, value)
        if key not in checks:
            try:
                inspect_image(value, parameter=name, provider=provider)
                checks[key] = None
            except InvalidRequestError as exc:
                checks[key] = exc
        problem = checks[key]
        if problem is not None:
            raise problem


def _resolve_frames(request: GenerationRequest, base: Path | None) -> GenerationRequest:
    """Local frame paths of a batch file are relative to the file's folder."""
    if base is None:
        return request
    changes: dict[str, str] = {}
    for name in _FRAME_FIELDS:
        value = getattr(request, name)
        if value is not None and frame_kind(value) == "file":
            path = Path(value).expanduser()
            if not path.is_absolute():
                changes[name] = os.path.normpath(base / path)
    return msgspec.structs.replace(request, **changes) if changes else request


# -- reading --------------------------------------------------------------------------------------------------


def _format_of(source: str, given: str | None) -> BatchFormat:
    if given is not None:
        if given not in _FORMATS:
            raise InvalidRequestError("format", given, "'txt', 'jsonl' or 'csv'")
        return given
    if source == "-":
        return "txt"
    suffix = Path(source).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".txt", ".text", ""):
        return "txt"
    raise InvalidRequestError(
        "format", None, f"cannot tell the format of {source!r} from its extension; pass 'txt', 'jsonl' or 'csv'"
    )


def _read_text(source: str) -> str:
    try:
        return Path(source).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise BatchFileError(f"no such file: {source}", source=source) from exc
    except IsADirectoryError as exc:
        raise BatchFileError(f"{source} is a folder, not a batch file", source=source) from exc
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start})", source=source) from exc
    except OSError as exc:
        raise BatchFileError(f"cannot read {source}: {exc.strerror or exc}", source=source) from exc


def load_requests(
    source: str | os.PathLike[str],
    *,
    format: BatchFormat | None = None,
    defaults: Mapping[str, Any] | None = None,
    provider: str | Provider | None = None,
    stdin: TextIO | None = None,
) -> list[GenerationRequest]:
    """Read a batch file into validated requests, checking every line before returning any.

    Usage::

        from hailuo_async import BatchFileError, HailuoClient, load_requests

        try:
            requests = load_requests("prompts.jsonl", defaults={"duration": 10}, provider="minimax")
        except BatchFileError as exc:
            for bad in exc.bad_lines:
                print(bad)  # line 3, field 'duration': invalid duration=7 for minimax: 6 or 10
            requests = exc.requests  # or stop here: these are the valid lines
        async with HailuoClient("minimax") as client:
            results = await client.gather_generations(requests, return_exceptions=True)

    Formats (blank lines and lines starting with ``#`` are skipped in .txt and .jsonl):

    - ``txt``: one prompt per line;
    - ``jsonl``: one JSON object per line with :class:`GenerationRequest` fields (``prompt``, ``model``,
      ``duration``, ``resolution``, ``first_frame``, ``last_frame``, ``prompt_optimizer``, ``fast_pretreatment``,
      ``watermark``), or a JSON string (a prompt);
    - ``csv``: a header row naming those fields, then one request per row; an empty cell leaves its field unset,
      and ``true/false``, ``1/0``, ``yes/no`` are booleans.

    Parameters:
        source: the file's path, or ``"-"`` for ``stdin``.
        format: ``"txt"``, ``"jsonl"`` or ``"csv"``; default: from the extension (``.txt``, ``.jsonl``,
            ``.ndjson``, ``.json``, ``.csv``, none: txt), txt for ``"-"``.
        defaults: fields for the lines that do not set them, e.g. ``{"duration": 10}`` or
            ``{"model": "MiniMax-Hailuo-2.3"}``; ``None`` values are ignored.
        provider: a provider or its name: each request is also checked against the rules of its model there
            (durations, resolutions, modes) and its local frame images are read and checked. Without it only the
            request itself is validated (a known model name included).
        stdin: what ``"-"`` reads (default: ``sys.stdin``).

    Local frame paths in the file are taken relative to the file's folder. An empty file gives an empty list.

    Raises:
        BatchFileError: the file cannot be read (``__cause__`` holds why), or some lines are not valid requests:
            ``bad_lines`` lists every one and ``requests`` holds the valid ones.
        InvalidRequestError: an unknown ``format``, no ``format`` for an unknown extension, or an unknown field
            in ``defaults``.
    """
    name = os.fspath(source)
    kind = _format_of(name, format)
    given = dict(defaults or {})
    unknown = sorted(set(given) - set(_REQUEST_FIELDS))
    if unknown:
        raise InvalidRequestError("defaults", unknown[0], f"a request field: {', '.join(_REQUEST_FIELDS)}")
    checked_for = get_provider(provider) if isinstance(provider, str) else provider
    if name == "-":
        name, text, base = "<stdin>", (sys.stdin if stdin is None else stdin).read(), None
    else:
        text, base = _read_text(name), Path(name).resolve().parent
    requests: list[GenerationRequest] = []
    bad_lines: list[BadLine] = []
    image_checks: dict[tuple[str, str], InvalidRequestError | None] = {}
    for number, parsed in _PARSERS[kind](text, given):
        try:
            if isinstance(parsed, _LineProblem):
                raise parsed
            request = _resolve_frames(parsed, base)
            if checked_for is not None:
                try:
                    check_request(request, checked_for, image_checks=image_checks)
                except InvalidRequestError as exc:
                    raise _LineProblem.invalid(exc) from None
            requests.append(request)
        except _LineProblem as problem:
            bad_lines.append(BadLine(line=number, field=problem.field, message=problem.message))
    if bad_lines:
        raise BatchFileError(
            f"{len(bad_lines)} bad line(s) in {name}:\n{format_bad_lines(bad_lines)}",
            source=name,
            bad_lines=bad_lines,
            requests=requests,
            provider=None if checked_for is None else checked_for.name,
        )
    return requests
