"""The receiving side of "completion by webhook": a provider POSTs a task's news to us instead of waiting to be
polled.

Data flow: the client gives each submit :meth:`WebhookReceiver.callback_url` (the codec puts it in the provider's
field, :meth:`~hailuo_async.providers.Provider.build_submit`); the provider POSTs to it; :class:`WebhookServer`
(aiohttp, bound to :attr:`Webhook.listen`) or the user's own web server hands each request to
:meth:`WebhookReceiver.handle`, which checks path, token, size and signature, decodes the body with the codec
(:meth:`~hailuo_async.providers.Provider.parse_webhook`), answers, and passes each new status to ``on_event``.
Polling stays the fallback: a delivery that never comes only means the poller finds the news itself.

:class:`Webhook` is the small frozen setting; the receiver does no I/O besides calling ``on_event``.
"""

from __future__ import annotations

import collections
import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping
from types import TracebackType
from urllib.parse import urlsplit

import anyio
import msgspec
from aiohttp import web

from ._clock import Clock, SystemClock
from ._exceptions import DecodeError, InvalidRequestError
from ._transport import is_loopback
from .providers import Provider, WebhookEvent

__all__ = [
    "DEDUPE_LIMIT",
    "MAX_BODY",
    "SECRET_ENV_VAR",
    "Webhook",
    "WebhookReceiver",
    "WebhookReply",
    "WebhookServer",
    "resolve_webhook",
]

logger = logging.getLogger("hailuo_async")

MAX_BODY = 1_048_576
"""Largest delivery body accepted, in bytes (1 MiB); a larger one gets 413."""
DEDUPE_LIMIT = 10_000
"""Deliveries remembered to drop duplicates (the oldest are forgotten first)."""
SECRET_ENV_VAR = "TOAPIS_WEBHOOK_SECRET"  # noqa: S105  (a variable name, not a secret)
"""Environment variable holding toapis's signing secret when :attr:`Webhook.secret` is not given."""

_LISTEN_PORT = re.compile(r"[0-9]{1,5}")
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")


def _split_listen(listen: str) -> tuple[str, int]:
    """``(host, port)`` from ``"HOST:PORT"`` (an IPv6 host in brackets: ``"[::1]:8080"``)."""
    allowed = "HOST:PORT with a port from 0 to 65535, e.g. '127.0.0.1:8080' or '[::1]:0'"
    if not isinstance(listen, str):
        raise InvalidRequestError("Webhook.listen", listen, allowed)
    host, colon, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        bracketed = True
    else:
        bracketed = False
    if (
        not colon
        or not host
        or (":" in host and not bracketed)
        or re.search(r"[\s/\[\]]", host)
        or _LISTEN_PORT.fullmatch(port) is None
        or int(port) > 65535
    ):
        raise InvalidRequestError("Webhook.listen", listen, allowed)
    return host, int(port)


def _check_public_url(url: str) -> None:
    allowed = "an absolute https URL without credentials, query or fragment (http only for a loopback host)"
    if not isinstance(url, str):
        raise InvalidRequestError("Webhook.public_url", url, allowed)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        raise InvalidRequestError("Webhook.public_url", url, allowed) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError("Webhook.public_url", url, allowed)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidRequestError("Webhook.public_url", url, allowed)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InvalidRequestError("Webhook.public_url", url, "https (plain http only for 127.0.0.1, ::1 or localhost)")


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """Where providers deliver a task's news, so the client learns it before its next status check.

    Usage: ``Webhook(listen="0.0.0.0:8080", public_url="https://hooks.example.com")`` behind a TLS proxy that
    forwards ``https://hooks.example.com/...`` to port 8080; ``Webhook(listen="127.0.0.1:0")`` for a local test.
    With ``listen=None`` nothing is bound: mount :meth:`WebhookReceiver.handle` in your own web server and give
    the ``public_url`` that reaches it. The secret never appears in the repr."""

    listen: str | None = None
    """``"HOST:PORT"`` for :class:`WebhookServer` to bind (port 0: any free port); ``None`` binds nothing."""
    public_url: str | None = None
    """The public base URL that reaches the listener's root (https unless the host is loopback); required unless
    ``listen`` is a loopback address. A proxy in front must forward the rest of the path unchanged."""
    secret: str | None = None
    """toapis's signing secret (configured with the key on toapis's token page); :func:`resolve_webhook` fills it
    from ``TOAPIS_WEBHOOK_SECRET``. Without one, toapis deliveries are refused (401)."""
    path: str = "/hailuo"
    """Path under which deliveries arrive: ``<public_url><path>/<token>``."""
    token: str | None = None
    """The unguessable path segment of the callback URL (at least 16 URL-safe characters); default: a random one
    per client. Fix it (and keep it secret, like a key) to receive the deliveries of an earlier run's tasks too: with
    a journal they are recorded, so that resuming the batch needs no status request for them."""
    fallback_lag: float = 30.0
    """The safety net: tasks whose provider was given the callback are still polled, as the polling contract with
    this ``max_lag`` (:class:`~hailuo_async.PollPolicy`), so a lost delivery delays a result by about this much at
    most (95th percentile), and never loses it."""

    def __post_init__(self) -> None:
        listen_host = None
        if self.listen is not None:
            listen_host = _split_listen(self.listen)[0]
        if self.public_url is not None:
            _check_public_url(self.public_url)
        elif self.listen is None:
            raise InvalidRequestError(
                "Webhook.public_url", None, "a public URL when listen is None (nothing is bound to derive one from)"
            )
        elif not is_loopback(listen_host):
            raise InvalidRequestError(
                "Webhook.public_url",
                None,
                f"a public https URL: listen={self.listen!r} is not a loopback address, so the callback URL "
                "cannot be derived from it (it would be plain http)",
            )
        if not isinstance(self.path, str) or _PATH.fullmatch(self.path) is None:
            raise InvalidRequestError(
                "Webhook.path", self.path, "a URL path starting with '/' (no query, fragment or spaces)"
            )
        if self.token is not None and (not isinstance(self.token, str) or _TOKEN.fullmatch(self.token) is None):
            raise InvalidRequestError("Webhook.token", "<hidden>", "at least 16 URL-safe characters (A-Z a-z 0-9 _ -)")
        if isinstance(self.fallback_lag, bool) or not (
            isinstance(self.fallback_lag, (int, float)) and 0 < self.fallback_lag < float("inf")
        ):
            raise InvalidRequestError("Webhook.fallback_lag", self.fallback_lag, "a positive number of seconds")
        if self.secret is not None and (not isinstance(self.secret, str) or not self.secret.strip()):
            raise InvalidRequestError("Webhook.secret", "<hidden>", "a non-empty string or None")

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` to bind, from :attr:`listen` (an IPv6 host without its brackets)."""
        return None if self.listen is None else _split_listen(self.listen)

    def __repr__(self) -> str:
        secret = None if self.secret is None else "***"
        return (
            f"Webhook(listen={self.listen!r}, public_url={self.public_url!r}, secret={secret!r}, path={self.path!r}, "
            f"token={None if self.token is None else '***'!r}, fallback_lag={self.fallback_lag!r})"
        )

    def __rich_repr__(self) -> list[tuple[str, object]]:
        return [
            ("listen", self.listen),
            ("public_url", self.public_url),
            ("secret", None if self.secret is None else "***"),
            ("path", self.path),
            ("token", None if self.token is None else "***"),
            ("fallback_lag", self.fallback_lag),
        ]


def resolve_webhook(webhook: Webhook) -> Webhook:
    """``webhook`` with its :attr:`~Webhook.secret` read from ``TOAPIS_WEBHOOK_SECRET`` when it gives none (and
    the variable is set); the client calls this once, as it resolves the API key."""
    if webhook.secret is not None:
        return webhook
    value = os.environ.get(SECRET_ENV_VAR, "").strip()
    return msgspec.structs.replace(webhook, secret=value) if value else webhook


class WebhookReply(msgspec.Struct, frozen=True, kw_only=True):
    """The answer :meth:`WebhookReceiver.handle` gives a delivery: status, headers and body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


_JSON = (("Content-Type", "application/json"),)


def _reply(status: int, payload: Mapping[str, object], headers: tuple[tuple[str, str], ...] = ()) -> WebhookReply:
    return WebhookReply(status=status, headers=(*_JSON, *headers), body=msgspec.json.encode(payload))


_OK = _reply(200, {"ok": True})
_BAD_REQUEST = _reply(400, {"error": "malformed body"})
_UNAUTHORIZED = _reply(401, {"error": "unauthorized"})
_NOT_FOUND = _reply(404, {"error": "not found"})
_METHOD_NOT_ALLOWED = _reply(405, {"error": "method not allowed"}, (("Allow", "POST"),))
_TOO_LARGE = _reply(413, {"error": "body too large"})
_SERVER_ERROR = _reply(500, {"error": "internal error"})


class WebhookReceiver:
    """Checks and decodes webhook deliveries for one provider and passes each new status to ``on_event``.

    Every delivery must arrive under ``<path>/<token>`` (apimart's with ``/callback`` appended, as apimart adds
    it); the token is unguessable and compared in constant time, which is what authenticates apimart's and
    MiniMax's unsigned deliveries. toapis's must also carry a valid signature. Duplicates (the same toapis event
    id, or the same task and status word) are answered 200 and not passed on again; so are ``endpoint.test``
    deliveries. MiniMax's challenge is echoed.

    ``on_event`` is a plain synchronous callable, called on the event loop for each accepted status: it must not
    block (hand the event to the poller and return). If it raises, the delivery gets 500 and the provider's retry
    is passed on again. :meth:`handle` never raises and logs no header, body, token or secret."""

    def __init__(
        self,
        provider: Provider,
        config: Webhook,
        *,
        on_event: Callable[[WebhookEvent], None],
        token: str | None = None,
        clock: Clock | None = None,
        dedupe_limit: int = DEDUPE_LIMIT,
    ) -> None:
        """``token``: the path segment that proves a delivery comes from whom we gave the URL (at least 16
        URL-safe characters; default ``secrets.token_urlsafe(24)``). ``clock``: its ``time()`` bounds toapis's
        timestamps."""
        if token is not None and (not isinstance(token, str) or _TOKEN.fullmatch(token) is None):
            raise InvalidRequestError("token", "<hidden>", "at least 16 URL-safe characters (A-Z a-z 0-9 _ -)")
        if isinstance(dedupe_limit, bool) or not isinstance(dedupe_limit, int) or dedupe_limit < 1:
            raise InvalidRequestError("dedupe_limit", dedupe_limit, "an integer >= 1")
        self.provider = provider
        self.config = config
        self._on_event = on_event
        token = token if token is not None else config.token
        self._token = token if token is not None else secrets.token_urlsafe(24)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._prefix = config.path.rstrip("/")
        self._seen: collections.OrderedDict[tuple[str, ...], None] = collections.OrderedDict()
        self._dedupe_limit = dedupe_limit

    def __repr__(self) -> str:
        return f"WebhookReceiver({self.provider.name!r}, path={self.config.path!r})"

    def callback_url(self, base_url: str | None = None) -> str:
        """The URL to give the provider: ``<base><path>/<token>``, where the base is :attr:`Webhook.public_url`
        if set, else ``base_url`` (what :meth:`WebhookServer.start` returned)."""
        base = self.config.public_url or base_url
        if not base:
            raise InvalidRequestError(
                "base_url", base_url, "the server's base URL (WebhookServer.start()) when Webhook.public_url is None"
            )
        return f"{base.rstrip('/')}{self._prefix}/{self._token}"

    def precheck(self, method: str, path: str) -> WebhookReply | None:
        """The refusal a request gets before its body is read (404 outside :attr:`Webhook.path`, 405 unless
        POST, 401 for a wrong token), or ``None`` when it may go on to :meth:`handle`."""
        path = path.partition("?")[0]
        if not path.startswith(self._prefix + "/"):
            return _NOT_FOUND
        if method.upper() != "POST":
            return _METHOD_NOT_ALLOWED
        rest = path[len(self._prefix) + 1 :]
        suffix = self.provider.webhook_suffix
        if suffix and rest.endswith(suffix):
            rest = rest[: -len(suffix)]
        if not rest or "/" in rest:
            return _NOT_FOUND
        if not hmac.compare_digest(rest.encode("utf-8", "replace"), self._token.encode()):
            logger.warning("webhook: refused a %s delivery with a wrong token", self.provider.name)
            return _UNAUTHORIZED
        return None

    async def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        """The answer to one delivery (``path`` as requested, query string allowed; ``body`` the raw bytes).
        Never raises: anything unexpected is logged (its type only) and answered 500."""
        try:
            return self._handle(method, path, headers, body)
        except Exception as exc:
            logger.error("webhook: %s delivery failed with %s", self.provider.name, type(exc).__name__)
            return _SERVER_ERROR

    def _handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        early = self.precheck(method, path)
        if early is not None:
            return early
        name = self.provider.name
        if len(body) > MAX_BODY:
            logger.warning("webhook: refused a %s delivery of %d bytes (over %d)", name, len(body), MAX_BODY)
            return _TOO_LARGE
        if not self.provider.check_webhook(headers, body, secret=self.config.secret, now=self._clock.time()):
            logger.warning("webhook: refused a %s delivery whose signature or timestamp does not hold", name)
            return _UNAUTHORIZED
        try:
            event = self.provider.parse_webhook(body)
        except DecodeError:
            logger.warning("webhook: refused a malformed %s delivery", name)
            return _BAD_REQUEST
        if event.kind == "challenge":
            logger.debug("webhook: answered a %s challenge", name)
            return _reply(200, {"challenge": event.challenge})
        if event.kind == "test":
            logger.info("webhook: %s test delivery received", name)
            return _OK
        key = _dedupe_key(event)
        if key in self._seen:
            self._seen.move_to_end(key)
            logger.debug("webhook: dropped a duplicate %s delivery for task %s", name, event.task_id)
            return _OK
        self._on_event(event)
        self._seen[key] = None
        if len(self._seen) > self._dedupe_limit:
            self._seen.popitem(last=False)
        return _OK


def _dedupe_key(event: WebhookEvent) -> tuple[str, ...]:
    """What makes two deliveries the same: the provider's event id, else the task and its status word."""
    if event.event_id is not None:
        return ("event", event.event_id)
    word = event.status.provider_status.strip().lower() if event.status is not None else ""
    return ("status", event.task_id or "", word)


class WebhookServer:
    """An aiohttp server bound to :attr:`Webhook.listen` that hands every request to a :class:`WebhookReceiver`.

    It reads at most :data:`MAX_BODY` + 1 bytes of a body, refuses by path, method and token before reading
    one, and keeps no access log (paths carry the token). Usage::

        async with WebhookServer(receiver) as server:
            url = receiver.callback_url(server.base_url)
    """

    def __init__(self, receiver: WebhookReceiver, *, shutdown_timeout: float = 5.0) -> None:
        address = receiver.config.address
        if address is None:
            raise InvalidRequestError(
                "Webhook.listen", None, "HOST:PORT to bind (without it, mount WebhookReceiver.handle yourself)"
            )
        self._receiver = receiver
        self._address = address
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        return f"WebhookServer(listen={self._receiver.config.listen!r}, base_url={self._base_url!r})"

    @property
    def base_url(self) -> str | None:
        """``http://HOST:PORT`` with the port actually bound, once started; ``None`` before and after."""
        return self._base_url

    async def start(self) -> str:
        """Bind and serve; returns :attr:`base_url`. Raises :class:`InvalidRequestError` when the address cannot
        be bound (in use, not this machine's)."""
        if self._runner is not None:
            raise RuntimeError("this WebhookServer is already started")
        host, port = self._address
        app = web.Application(client_max_size=MAX_BODY + 1)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = int(runner.addresses[0][1])
        except OSError as exc:
            await self._cleanup(runner)
            raise InvalidRequestError(
                "Webhook.listen", self._receiver.config.listen, f"an address this machine can bind ({exc.strerror})"
            ) from exc
        except BaseException:
            await self._cleanup(runner)
            raise
        self._runner = runner
        shown = f"[{host}]" if ":" in host else host
        self._base_url = f"http://{shown}:{bound}"
        logger.info("webhook: %s deliveries served at %s", self._receiver.provider.name, self._base_url)
        return self._base_url

    async def close(self) -> None:
        """Stop serving and release the socket and every connection; safe to call twice."""
        runner, self._runner = self._runner, None
        self._base_url = None
        if runner is not None:
            await self._cleanup(runner)

    async def __aenter__(self) -> WebhookServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @staticmethod
    async def _cleanup(runner: web.AppRunner) -> None:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        receiver = self._receiver
        reply = receiver.precheck(request.method, request.path)
        if reply is None and request.content_length is not None and request.content_length > MAX_BODY:
            reply = _TOO_LARGE
        if reply is None:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                reply = _TOO_LARGE
            else:
                reply = await receiver.handle(request.method, request.path, request.headers, body)
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))
