"""Recording what a provider really answers, so a user's run can become a test fixture.

Data flow: with ``HailuoClient(..., record_to=DIR)`` (``hailuo ... --record DIR``) the client's transport is wrapped in
a :class:`RecordingTransport`: every API request and its answer pass through unchanged and are also written as one
JSON file each under ``DIR/<provider>/`` (method, path, status, headers, body). Credentials never reach a file: the
transport adds the key itself (it is not in the request values seen here), the key is masked wherever it might be
echoed, credential and cookie headers are dropped, and signed URL query strings are masked. Video downloads are not
recorded (they carry no API knowledge and are large).

Drop the files into ``tests/fixtures/<provider>/recorded/`` and the replay test reads every one back through the
codecs (:func:`replay`).
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgspec

from ._exceptions import APIError, DecodeError, HailuoError
from ._http import HttpRequest, HttpResponse, redact
from ._transport import StreamResponse, Transport
from .providers import Provider

__all__ = ["Recording", "RecordingTransport", "replay"]

_DROPPED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-goog-api-key"}
)


class Recording(msgspec.Struct, kw_only=True):
    """One recorded exchange, as stored in a file."""

    provider: str
    route: str
    method: str
    path: str
    request_headers: dict[str, str] = {}
    request_body: Any = None
    status: int | None = None
    headers: dict[str, str] = {}
    body: Any = None
    body_base64: str | None = None
    error: str | None = None
    """The transport error, when no answer came."""

    def response(self) -> HttpResponse:
        """The recorded answer as the codecs see it."""
        if self.status is None:
            raise ValueError("this recording holds a transport error, not an answer")
        if self.body_base64 is not None:
            raw = base64.b64decode(self.body_base64)
        elif isinstance(self.body, str):
            raw = self.body.encode()
        elif self.body is None:
            raw = b""
        else:
            raw = msgspec.json.encode(self.body)
        return HttpResponse(status=self.status, headers={k.lower(): v for k, v in self.headers.items()}, body=raw)


def _headers(pairs: Mapping[str, str] | tuple[tuple[str, str], ...]) -> dict[str, str]:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return {name: value for name, value in items if name.lower() not in _DROPPED_HEADERS}


def _body(raw: bytes | None, content_type: str) -> tuple[Any, str | None]:
    """``(json_or_text, base64)``: JSON bodies as values, other text as a string, binary (uploads) as base64."""
    if not raw:
        return None, None
    if "multipart/" in content_type:
        return f"<multipart body, {len(raw)} bytes, not recorded>", None
    try:
        return msgspec.json.decode(raw), None
    except msgspec.DecodeError:
        pass
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(raw).decode("ascii")


class RecordingTransport(Transport):
    """Wraps another transport and writes every API exchange to ``directory/<provider>/NNNNN-route-status.json``.

    ``secrets`` (the API key) are masked wherever they appear in a recorded file."""

    def __init__(self, inner: Transport, directory: str | os.PathLike[str], *, provider: str, secrets: tuple[str, ...]):
        self.inner = inner
        self.directory = Path(directory) / provider
        self.provider = provider
        self._secrets = tuple(s for s in secrets if s)
        self._numbers = itertools.count(1)

    def __repr__(self) -> str:
        return f"RecordingTransport({self.inner!r}, directory={os.fspath(self.directory)!r})"

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._prepare)
        await self.inner.open()

    def _prepare(self) -> None:
        """Create the folder; number this run's files after any an earlier run left there."""
        self.directory.mkdir(parents=True, exist_ok=True)
        numbers = [int(path.name[:5]) for path in self.directory.glob("*.json") if path.name[:5].isdigit()]
        self._numbers = itertools.count(max(numbers, default=0) + 1)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            response = await self.inner.send(request)
        except HailuoError as exc:
            await self._write(request, None, exc)
            raise
        await self._write(request, response, None)
        return response

    def stream(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> AbstractAsyncContextManager[StreamResponse]:
        return self._stream(url, headers)

    @asynccontextmanager
    async def _stream(self, url: str, headers: Mapping[str, str] | None) -> AsyncIterator[StreamResponse]:
        async with self.inner.stream(url, headers=headers) as response:
            yield response

    async def _write(self, request: HttpRequest, response: HttpResponse | None, error: HailuoError | None) -> None:
        request_type = {k.lower(): v for k, v in request.headers}.get("content-type", "")
        request_body, _ = _body(request.body, request_type)
        record = Recording(
            provider=self.provider,
            route=request.route,
            method=request.method,
            path=request.path,
            request_headers=_headers(request.headers),
            request_body=request_body,
            error=None if error is None else f"{type(error).__name__}: {error}",
        )
        if response is not None:
            body, body_base64 = _body(response.body, response.headers.get("content-type", ""))
            record.status = response.status
            record.headers = _headers(response.headers)
            record.body = body
            record.body_base64 = body_base64
        text = redact(msgspec.json.encode(record).decode(), *self._secrets)
        status = "error" if response is None else str(response.status)
        await anyio.to_thread.run_sync(self._save, f"{request.route}-{status}", text)

    def _save(self, stem: str, text: str) -> None:
        formatted = msgspec.json.format(text.encode(), indent=1)
        while True:  # never overwrite an earlier run's recordings in the same folder
            path = self.directory / f"{next(self._numbers):05d}-{stem}.json"
            try:
                with path.open("xb") as file:
                    file.write(formatted)
                return
            except FileExistsError:
                continue


def replay(recording: Recording, provider: Provider) -> object:
    """Feed a recorded answer through ``provider``'s codec for its route; returns what the codec made of it.

    A 2xx answer must decode (a :class:`DecodeError` means the codec cannot read what the provider really sent);
    an error answer must become the library's typed :class:`APIError`, which is returned rather than raised."""
    response = recording.response()
    parse = {
        "submit": provider.parse_submit,
        "status": provider.parse_status,
        "lookup": provider.parse_lookup,
        "retrieve": provider.parse_fetch,
        "upload": provider.parse_upload,
    }[recording.route]
    try:
        return parse(response)
    except DecodeError:
        raise
    except APIError as exc:
        return exc
