"""The one seam between the library and the network.

The engine hands :class:`~hailuo_async._http.HttpRequest` values to a :class:`Transport` and gets
:class:`~hailuo_async._http.HttpResponse` values back; downloads stream through :meth:`Transport.stream`.
:class:`AiohttpTransport` is the real thing: API calls carry the key and never follow redirects, and anything
outside the API origin (videos, anything a provider points at) goes through a second session that holds no
credentials. aiohttp's exceptions are mapped to the library's here and nowhere else.
:class:`MockTransport` answers from a plain function, for fast engine tests.
"""

from __future__ import annotations

import abc
import inspect
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from yarl import URL

from ._config import DEFAULT_TIMEOUTS, Timeouts
from ._exceptions import ConnectError, DecodeError, InvalidRequestError, ReadTimeoutError, TransportError
from ._http import HttpRequest, HttpResponse, redact
from ._version import __version__

__all__ = [
    "AiohttpTransport",
    "MockTransport",
    "StreamResponse",
    "Transport",
    "check_base_url",
    "is_loopback",
]

logger = logging.getLogger("hailuo_async")

USER_AGENT = f"hailuo-async/{__version__}"
SUBMIT_KEEPALIVE = 2.0
"""Seconds an idle submit connection is kept for reuse."""
MAX_API_BODY = 4 * 1024 * 1024
"""Largest API answer read into memory; a bigger one is refused (a status answer is a few hundred bytes)."""


class StreamResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The head of a streamed download plus its body as an async iterator of chunks."""

    status: int
    headers: Mapping[str, str]
    url: str
    chunks: AsyncIterator[bytes]


class Transport(abc.ABC):
    """Carries API requests and downloads. Subclass it to plug in another HTTP stack."""

    async def open(self) -> None:  # noqa: B027 - optional hook with a do-nothing default
        """Acquire resources; called once by the client's ``__aenter__`` (inside the running loop)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a do-nothing default
        """Release every resource; called once by the client's ``__aexit__``."""

    @abc.abstractmethod
    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send an API request (relative ``path``) with credentials and return the complete answer.

        Raises :class:`TransportError` (``maybe_sent`` telling whether the server may have seen it)."""

    @abc.abstractmethod
    def stream(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> AbstractAsyncContextManager[StreamResponse]:
        """GET an absolute URL **without credentials**, following redirects safely, streaming the body."""


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, allow_insecure_http: bool, parameter: str = "base_url") -> str:
    """``url`` without a trailing slash, or :class:`InvalidRequestError` if it is not a usable API base URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(parameter, url, "an absolute http(s) URL such as https://api.apimart.ai")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidRequestError(parameter, redact(url), "a URL without credentials, query or fragment")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise InvalidRequestError(
            parameter,
            url,
            "https is required (plain http is only allowed for loopback hosts or with allow_insecure_http=True)",
        )
    return url.rstrip("/")


Handler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


class MockTransport(Transport):
    """Answers requests with ``handler(request)`` (sync or async); for engine tests without a network.

    API requests reach the handler as they are; downloads reach it as a ``GET`` with ``route="download"`` and
    the absolute URL in ``path``. The handler may raise :class:`TransportError` to simulate network faults.

    Usage::

        def handler(request: HttpRequest) -> HttpResponse:
            return HttpResponse(status=200, body=b'{"task_id": "1", "base_resp": {"status_code": 0}}')

        HailuoClient("minimax", api_key="k", transport=MockTransport(handler))
    """

    def __init__(self, handler: Handler, *, chunk_size: int = 65536, keep_requests: bool = True) -> None:
        self.handler = handler
        self.chunk_size = chunk_size
        self.keep_requests = keep_requests
        self.requests: list[HttpRequest] = []
        """Every request seen, in order (unless ``keep_requests=False``, for long runs)."""

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        if self.keep_requests:
            self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def send(self, request: HttpRequest) -> HttpResponse:
        return await self._answer(request)

    @asynccontextmanager
    async def stream(self, url: str, *, headers: Mapping[str, str] | None = None) -> AsyncIterator[StreamResponse]:
        request = HttpRequest(method="GET", path=url, route="download", headers=tuple((headers or {}).items()))
        answer = await self._answer(request)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(answer.body), self.chunk_size):
                yield answer.body[start : start + self.chunk_size]

        yield StreamResponse(status=answer.status, headers=answer.headers, url=url, chunks=chunks())


async def _on_headers_sent(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
    flag = context.trace_request_ctx
    if isinstance(flag, dict):
        flag["sent"] = True


def _map_exception(exc: BaseException, *, sent: bool, where: str, secrets: tuple[str, ...]) -> TransportError:
    """The library's exception for an aiohttp/asyncio failure; ``sent`` is whether headers reached the wire."""
    detail = redact(f"{type(exc).__name__}: {exc}", *secrets)[:300]
    if not sent or isinstance(exc, (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError)):
        return ConnectError(f"{where}: request not sent ({detail})")
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return ReadTimeoutError(f"{where}: no answer in time ({detail})")
    return TransportError(f"{where}: connection failed after the request was sent ({detail})", maybe_sent=True)


_MAPPED = (aiohttp.ClientError, TimeoutError, OSError)


class AiohttpTransport(Transport):
    """The real transport: three aiohttp sessions created in :meth:`open` and closed in :meth:`aclose`.

    - submits: connections are reused only while idle for under ``SUBMIT_KEEPALIVE`` (2 s), far below any
      server's keep-alive timeout, so a stale socket can never turn a paid POST into an unknown outcome;
    - other API calls: pooled, sized to the concurrency;
    - downloads: no credentials, no cookies, no environment proxies or ``.netrc``, redirects checked hop by hop.

    The key is attached per request, only to URLs of the API origin, and never as a session default.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        max_connections: int = 32,
        allow_insecure_http: bool = False,
        max_redirects: int = 5,
    ) -> None:
        self.base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._api_key = api_key
        self._auth = f"Bearer {api_key}"
        # Keys too short to be real secrets are not scrubbed from bodies: that would corrupt ordinary text.
        self._redact_key = api_key.encode() if len(api_key) >= 8 else b""
        self.timeouts = timeouts
        self.max_connections = max_connections
        self.allow_insecure_http = allow_insecure_http
        self.max_redirects = max_redirects
        self._api: aiohttp.ClientSession | None = None
        self._submit: aiohttp.ClientSession | None = None
        self._cdn: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AiohttpTransport(base_url={self.base_url!r}, api_key='***')"

    async def open(self) -> None:
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_on_headers_sent)
        api_timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.read
        )
        common: dict[str, Any] = {
            "headers": {"User-Agent": USER_AGENT},
            "cookie_jar": aiohttp.DummyCookieJar(),
            "trust_env": False,
            "raise_for_status": False,
            "auto_decompress": True,
        }
        self._api = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections),
            timeout=api_timeout,
            **common,
        )
        self._submit = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=self.max_connections,
                # A pooled connection the server closed as idle would turn a paid POST into an unknown outcome.
                # We drop idle connections after a few seconds, well before any server does (5 s at the least
                # seen, 60-75 s usual), so that race cannot happen, yet bulk submits still share connections.
                keepalive_timeout=SUBMIT_KEEPALIVE,
            ),
            timeout=api_timeout,
            trace_configs=[trace],  # tells "never sent" from "maybe delivered" for the money-safety rules
            **common,
        )
        self._cdn = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=None,
                sock_connect=self.timeouts.connect,
                sock_read=self.timeouts.download_read,
            ),
            **common,
        )

    async def aclose(self) -> None:
        for session in (self._api, self._submit, self._cdn):
            if session is not None and not session.closed:
                await session.close()

    @property
    def closed(self) -> bool:
        """Whether every session is closed (or was never opened)."""
        return all(s is None or s.closed for s in (self._api, self._submit, self._cdn))

    async def send(self, request: HttpRequest) -> HttpResponse:
        session = self._submit if request.route == "submit" else self._api
        if session is None:
            raise RuntimeError("transport is not open")
        path = request.path
        if not path.startswith("/") or path.startswith("//") or "\\" in path:
            # defensive: a crafted path can never move the key to another origin
            raise InvalidRequestError("path", path, "must be an absolute path on the API origin")
        url = self.base_url + path
        headers = dict(request.headers)
        headers["Authorization"] = self._auth
        # Only submits trace whether their headers left (a GET may always be repeated); others count as sent.
        flag = {"sent": request.route != "submit"}
        where = f"{request.method} {request.route}"
        try:
            async with session.request(
                request.method,
                url,
                data=request.body,
                headers=headers,
                allow_redirects=False,
                trace_request_ctx=flag,
            ) as response:
                length = response.content_length
                if length is not None and length > MAX_API_BODY:
                    raise DecodeError(f"{where}: answer of {length} bytes is too large")
                if length is not None:
                    payload = await response.read()  # size known and bounded: one read
                else:
                    body = bytearray()
                    async for chunk in response.content.iter_chunked(65536):
                        body += chunk
                        if len(body) > MAX_API_BODY:
                            raise DecodeError(f"{where}: answer larger than {MAX_API_BODY} bytes")
                    payload = bytes(body)
                if self._redact_key and self._redact_key in payload:  # a provider echoing the key back
                    payload = payload.replace(self._redact_key, b"***")
                # aiohttp's header mapping is already case-insensitive; no copy needed.
                return HttpResponse(status=response.status, headers=response.headers, body=payload)
        except _MAPPED as exc:
            raise _map_exception(exc, sent=flag["sent"], where=where, secrets=(self._api_key,)) from None

    @asynccontextmanager
    async def stream(self, url: str, *, headers: Mapping[str, str] | None = None) -> AsyncIterator[StreamResponse]:
        session = self._cdn
        if session is None:
            raise RuntimeError("transport is not open")
        current = url
        for _ in range(self.max_redirects + 1):
            self._check_download_url(current)
            try:
                response = await session.get(current, headers=dict(headers or {}), allow_redirects=False)
            except _MAPPED as exc:
                raise _map_exception(exc, sent=True, where="download", secrets=(self._api_key,)) from None
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                location = response.headers["Location"]
                response.release()
                current = str(response.url.join(URL(location)))
                continue
            try:
                yield StreamResponse(
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    url=current,
                    chunks=self._chunks(response),
                )
            finally:
                response.release()
            return
        raise TransportError(f"download: more than {self.max_redirects} redirects", maybe_sent=True)

    async def _chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_chunked(256 * 1024):
                yield chunk
        except _MAPPED as exc:
            raise _map_exception(exc, sent=True, where="download", secrets=(self._api_key,)) from None

    def _check_download_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "https" or (
            parts.scheme == "http" and (self.allow_insecure_http or is_loopback(parts.hostname))
        ):
            return
        raise TransportError(
            f"download: refusing {parts.scheme or 'schemeless'} URL {redact(url)[:120]} (https required)",
            maybe_sent=False,
        )
