"""The codec interface every provider implements, and what the three share.

A codec is pure: it builds :class:`~hailuo_async._http.HttpRequest` values and reads
:class:`~hailuo_async._http.HttpResponse` values, raising only the library's exceptions. The engine calls it;
the transport carries what it builds. On the receiving side of a webhook it does the same for what a provider
POSTs to us: :meth:`Provider.check_webhook` verifies a delivery's signature and :meth:`Provider.parse_webhook`
turns its body into a :class:`WebhookEvent`; :mod:`hailuo_async._webhook` does the HTTP around them.
"""

from __future__ import annotations

import abc
import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

import msgspec

from .._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    DecodeError,
    IdempotencyInProgressError,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    UnexpectedRedirectError,
)
from .._http import HttpRequest, HttpResponse, parse_retry_after, redact
from .._models import DEFAULT_MODEL, FrameKind, GenerationRequest, TaskState, TaskStatus, frame_kind
from ._rules import ModelRules

__all__ = ["MODEL", "Provider", "WebhookEvent", "WebhookKind", "map_status_word"]

MODEL = DEFAULT_MODEL
"""The model a request names unless it says otherwise (``"MiniMax-Hailuo-02"``)."""

_T = TypeVar("_T")

# Status words seen across the providers and their documentation drift (docs/providers.md, "Mapping status words").
# Matched case-insensitively; any other word means "keep polling".
_STATUS_WORDS: dict[str, TaskState] = {
    **dict.fromkeys(
        ("submitted", "pending", "queued", "queueing", "preparing", "starting", "in_queue", "waiting"),
        TaskState.QUEUED,
    ),
    **dict.fromkeys(("processing", "in_progress", "running", "generating"), TaskState.RUNNING),
    **dict.fromkeys(("completed", "success", "succeeded", "succeed", "done", "finished"), TaskState.COMPLETED),
    **dict.fromkeys(
        ("failed", "fail", "failure", "error", "cancelled", "canceled", "expired", "rejected"),
        TaskState.FAILED,
    ),
}


def path_segment(task_id: str) -> str:
    """``task_id`` quoted for use as one URL path segment; ``.``/``..``/empty ids are refused."""
    if not task_id or task_id.strip(".") == "":
        raise InvalidRequestError("task_id", task_id, "a provider task id (not empty, '.' or '..')")
    return quote(task_id, safe="")


def flags(request: GenerationRequest, *, watermark: str) -> dict[str, bool]:
    """The boolean options the request sets (``None`` ones left out), under the provider's field names;
    ``watermark`` is the provider's name for the watermark flag."""
    names = (
        ("prompt_optimizer", "prompt_optimizer"),
        ("fast_pretreatment", "fast_pretreatment"),
        ("watermark", watermark),
    )
    return {key: value for name, key in names if (value := getattr(request, name)) is not None}


def map_status_word(word: str) -> TaskState | None:
    """The common state for a provider's status word, or ``None`` when the word is unknown."""
    return _STATUS_WORDS.get(word.strip().lower())


WebhookKind = Literal["status", "challenge", "test"]
"""What a webhook delivery is: a task's new status, MiniMax's challenge before a task is created, or toapis's
``endpoint.test``."""


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook delivery, decoded by :meth:`Provider.parse_webhook`.

    A ``"status"`` event carries ``task_id`` and ``status``: apimart's is the full status (the body is its status
    answer, video URL included); MiniMax's has the state and the ``file_id`` (the URL still comes from
    ``files/retrieve``); toapis's has the state only (no URL, no failure detail), so one status check follows a
    terminal one. A ``"challenge"`` event carries the string to echo; a ``"test"`` event nothing to act on."""

    kind: WebhookKind
    """``"status"``, ``"challenge"`` or ``"test"``."""
    task_id: str | None = None
    """The provider's task id (``"status"`` events)."""
    status: TaskStatus | None = None
    """What the delivery says about the task (``"status"`` events)."""
    challenge: str | None = None
    """The string MiniMax expects echoed as ``{"challenge": ...}`` (``"challenge"`` events)."""
    event_id: str | None = None
    """The provider's id of this delivery, where it gives one (toapis); retries of a delivery repeat it."""


class ErrorObject(msgspec.Struct):
    """An ``error`` object as the gateways send it (every field optional)."""

    code: int | str | None = None
    message: str | None = None
    type: str | None = None


class _BaseResp(msgspec.Struct):
    status_code: int | str | None = None
    status_msg: str | None = None


class _ErrorBody(msgspec.Struct):
    error: ErrorObject | str | None = None
    message: str | None = None
    msg: str | None = None
    code: int | str | None = None
    request_id: str | None = None
    base_resp: _BaseResp | None = None


_decode_error_body = msgspec.json.Decoder(_ErrorBody, strict=False).decode

# MiniMax base_resp codes (docs/providers.md, C.6) grouped by the exception they become.
_MINIMAX_CODES: dict[int, type[APIError]] = {
    **dict.fromkeys((1004, 2049, 2038), AuthenticationError),
    **dict.fromkeys((1008, 2056), InsufficientBalanceError),
    **dict.fromkeys((1002, 1039, 1041, 2045), RateLimitError),
    **dict.fromkeys((1000, 1001, 1024, 1033), ServerError),
    **dict.fromkeys((1026, 1027), ContentPolicyError),
    **dict.fromkeys((2013, 1042), BadRequestError),
}

_CONTENT_POLICY = re.compile(r"content.?policy|sensitive|moderation|nsfw|violat", re.IGNORECASE)

IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
"""Error code of a 409 answer while a request with the same ``Idempotency-Key`` is still being processed
(docs/providers.md, A.1); it becomes :class:`IdempotencyInProgressError` from any provider."""


def error_class_for_status(status: int) -> type[APIError]:
    """The exception class for an HTTP error status."""
    if status in (401, 403):
        return AuthenticationError
    if status == 402:
        return InsufficientBalanceError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if 300 <= status < 400:
        return UnexpectedRedirectError
    if status == 422:
        return ContentPolicyError
    if 400 <= status < 500:
        return BadRequestError
    return APIError


def make_api_error(
    cls: type[APIError],
    message: str,
    *,
    provider: str,
    status_code: int,
    code: str | int | None,
    request_id: str | None,
    headers: Mapping[str, str],
) -> APIError:
    """Build ``cls`` with its context; rate-limit and idempotency-in-progress errors get the parsed
    ``Retry-After``. The code ``idempotency_in_progress`` makes an :class:`IdempotencyInProgressError`
    whatever ``cls`` says."""
    if isinstance(code, str) and code.strip().lower() == IDEMPOTENCY_IN_PROGRESS:
        cls = IdempotencyInProgressError
    elif cls is BadRequestError and _CONTENT_POLICY.search(f"{message} {code}"):
        cls = ContentPolicyError
    retry_after = None
    if issubclass(cls, (RateLimitError, IdempotencyInProgressError)):
        lowered = {name.lower(): value for name, value in headers.items()}  # a hand-built answer may say Retry-After
        retry_after = parse_retry_after(lowered)
    return cls(
        message, provider=provider, status_code=status_code, code=code, request_id=request_id, retry_after=retry_after
    )


def snippet(body: bytes, limit: int = 200) -> str:
    """The first ``limit`` bytes of a body as text, with anything secret-looking masked."""
    return redact(body[:limit].decode("utf-8", "replace"))


def multipart_image(
    field_values: Mapping[str, str], filename: str, content_type: str, data: bytes
) -> tuple[str, bytes]:
    """A ``multipart/form-data`` body with one ``file`` part; returns ``(content_type_header, body)``."""
    boundary = "hailuo-" + uuid.uuid4().hex
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[-100:] or "image"
    parts: list[bytes] = []
    for name, value in field_values.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


JSON_HEADERS = (("Content-Type", "application/json"), ("Accept", "application/json"))
ACCEPT_JSON = (("Accept", "application/json"),)


class Provider(abc.ABC):
    """One provider's wire format. Subclasses are stateless; one instance serves any number of clients."""

    name: ClassVar[str]
    """Registry name, e.g. ``"apimart"``."""
    default_base_url: ClassVar[str]
    """The provider's public API base URL."""
    env_var: ClassVar[str]
    """Environment variable holding the API key."""
    model_rules: ClassVar[dict[str, ModelRules]]
    """What each model accepts here, by canonical model name (:data:`~hailuo_async.providers._rules.RULES`)."""
    refunds_failed: ClassVar[bool] = False
    """Whether a generation that fails costs nothing (documented refund); otherwise a failed task keeps its
    estimated cost in the client's spending, which is the safe side for a spending cap."""
    frame_sources: ClassVar[frozenset[FrameKind]]
    """Frame source kinds the submit body can carry as they are (local files are uploaded or inlined first)."""
    honours_idempotency_key: ClassVar[bool] = False
    """Whether a resent submit with the same ``Idempotency-Key`` is known not to create a second task."""
    body_key_field: ClassVar[str | None] = None
    """Top-level submit body field that carries the idempotency key, for providers that take the client's own
    id in the body (toapis ``client_business_id``); ``None`` leaves the key out of the body."""
    upload_limit: ClassVar[int | None] = None
    """Largest image the upload endpoint takes, in bytes; ``None`` when there is no upload endpoint."""
    image_limit: ClassVar[int] = 20 * 1024 * 1024
    """Largest frame image the model takes, in bytes."""
    prompt_required: ClassVar[bool] = False
    """Whether the provider documents ``prompt`` as required even when a first frame is given."""
    submit_budget_per_minute: ClassVar[float | None] = None
    """Documented submit rate limit, used as the default submit budget."""
    callback_field: ClassVar[tuple[str, ...] | None] = None
    """Where the submit body carries a webhook URL, as a path of keys (apimart ``("webhook",)``, toapis
    ``("metadata", "callback_url")``); ``None`` when the provider takes none."""
    webhook_suffix: ClassVar[str] = ""
    """What the provider appends to the webhook URL it was given before POSTing (apimart ``"/callback"``)."""

    # -- validation -----------------------------------------------------------------------------------------

    def rules(self, model: str = DEFAULT_MODEL) -> ModelRules:
        """What ``model`` (canonical name) accepts on this provider."""
        return self.model_rules[model]

    @property
    def durations(self) -> tuple[int, ...]:
        """The durations in seconds Hailuo-02 takes here, shortest (and default) first; 1080p only at the shortest.
        Every model's own: :meth:`rules`."""
        return self.rules().durations

    def validate(self, request: GenerationRequest) -> None:
        """Raise :class:`InvalidRequestError` unless this provider accepts ``request`` (its model's rules:
        :meth:`ModelRules.check`, the prompt and the frame sources)."""
        if self.prompt_required and not (request.prompt and request.prompt.strip()):
            raise InvalidRequestError(
                "prompt",
                request.prompt,
                f"{self.name} requires a prompt in every mode, image-to-video too",
                provider=self.name,
            )
        self.rules(request.model).check(request)
        for parameter, source in (("first_frame", request.first_frame), ("last_frame", request.last_frame)):
            if source is None:
                continue
            kind = frame_kind(str(source))
            if kind != "file" and kind not in self.frame_sources:
                allowed = " or ".join(
                    {"url": "a public http(s) URL", "data_uri": "a data: URI", "file": "a local file"}[k]
                    for k in sorted(self.frame_sources | {"file"})
                )
                raise InvalidRequestError(
                    parameter, str(source)[:40], f"{self.name} takes {allowed}", provider=self.name
                )

    # -- submit -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def submit_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for ``request``; frames must already be URLs or data URIs."""

    submit_path: ClassVar[str]

    def build_submit(
        self, request: GenerationRequest, *, idempotency_key: str | None = None, callback_url: str | None = None
    ) -> HttpRequest:
        """The submit request for a validated ``request`` whose frames are already URLs or data URIs;
        ``callback_url`` (an absolute http(s) URL) goes where :attr:`callback_field` says, next to whatever the body
        already holds there."""
        for parameter, source in (("first_frame", request.first_frame), ("last_frame", request.last_frame)):
            if source is not None and frame_kind(str(source)) == "file":
                raise InvalidRequestError(
                    parameter, str(source), "local files must be uploaded before building the submit"
                )
        headers: tuple[tuple[str, str], ...] = JSON_HEADERS
        if idempotency_key is not None and self.honours_idempotency_key:
            headers = (*headers, ("Idempotency-Key", idempotency_key))
        fields = self.submit_body(request)
        if idempotency_key is not None and self.body_key_field is not None:
            fields[self.body_key_field] = idempotency_key
        if callback_url is not None:
            self._put_callback(fields, callback_url)
        body = msgspec.json.encode(fields)
        return HttpRequest(method="POST", path=self.submit_path, route="submit", headers=headers, body=body)

    def _put_callback(self, fields: dict[str, Any], callback_url: str) -> None:
        """Put ``callback_url`` into the submit body at :attr:`callback_field`, merging into any object there."""
        if self.callback_field is None:
            raise InvalidRequestError("callback_url", callback_url, f"{self.name} takes no webhook URL")
        if not isinstance(callback_url, str) or not re.match(r"https?://[^/?#\s]+", callback_url, re.IGNORECASE):
            raise InvalidRequestError("callback_url", callback_url, "an absolute http(s) URL", provider=self.name)
        *parents, leaf = self.callback_field
        target = fields
        for key in parents:
            inner = target.get(key)
            if not isinstance(inner, dict):
                inner = target[key] = {}
            target = inner
        target[leaf] = callback_url

    @abc.abstractmethod
    def parse_submit(self, response: HttpResponse) -> str:
        """The task id from a submit answer; raises :class:`APIError` or :class:`DecodeError`."""

    # -- status -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def build_status(self, task_id: str) -> HttpRequest:
        """The status request for one task."""

    @abc.abstractmethod
    def parse_status(self, response: HttpResponse) -> TaskStatus:
        """A :class:`TaskStatus` from a status answer."""

    # -- result URL (MiniMax) -------------------------------------------------------------------------------

    def build_fetch(self, file_id: str) -> HttpRequest:
        """The extra request that turns a finished task's file id into a URL (MiniMax only)."""
        raise NotImplementedError(f"{self.name} gives the video URL in the status answer")

    def parse_fetch(self, response: HttpResponse) -> tuple[str, float | None]:
        """``(video_url, expires_at)`` from the fetch answer."""
        raise NotImplementedError(f"{self.name} gives the video URL in the status answer")

    # -- looking a submit up by the client's own key (toapis) ----------------------------------------------

    can_look_up_submits: ClassVar[bool] = False
    """Whether a submit whose answer was lost can be looked up by the key sent with it (toapis
    ``client_business_id``): found means the task exists, not found means it was never created."""

    def build_lookup(self, key: str) -> HttpRequest:
        """The request asking which task, if any, the submit sent with ``key`` created."""
        raise NotImplementedError(f"{self.name} cannot look a submit up by the client's key")

    def parse_lookup(self, response: HttpResponse) -> str | None:
        """The task id the looked-up submit created, or ``None`` when the provider says no task carries the key
        (HTTP 404). Any other error answer raises its :class:`APIError`."""
        raise NotImplementedError(f"{self.name} cannot look a submit up by the client's key")

    # -- webhooks -----------------------------------------------------------------------------------------

    def check_webhook(self, headers: Mapping[str, str], body: bytes, *, secret: str | None, now: float) -> bool:
        """Whether a delivery's signature holds (``now``: Unix time). Providers that sign nothing accept every
        delivery here; the receiver's unguessable path is then what authenticates it."""
        return True

    def parse_webhook(self, body: bytes) -> WebhookEvent:
        """The event a webhook delivery's body describes; raises :class:`DecodeError` for a malformed one."""
        raise NotImplementedError(f"{self.name} has no webhook")

    def webhook_status(self, body: bytes) -> TaskStatus:
        """A webhook body that has the shape of a status answer (apimart, MiniMax), read by :meth:`parse_status`;
        an error inside it is a malformed delivery (:class:`DecodeError`), not an API error."""
        try:
            return self.parse_status(HttpResponse(status=200, headers={}, body=body))
        except APIError as exc:
            raise DecodeError(
                f"{self.name}: webhook body reports an error ({type(exc).__name__})", provider=self.name
            ) from None

    # -- uploads ------------------------------------------------------------------------------------------

    def build_upload(self, filename: str, content_type: str, data: bytes) -> HttpRequest:
        """The image upload request (apimart, toapis)."""
        raise NotImplementedError(f"{self.name} has no image upload endpoint")

    def parse_upload(self, response: HttpResponse) -> tuple[str, float | None]:
        """``(url, expires_at)``: the public URL of an uploaded image and the Unix time it stops working
        (``None`` when the provider does not say)."""
        raise NotImplementedError(f"{self.name} has no image upload endpoint")

    # -- shared helpers -----------------------------------------------------------------------------------

    def decode(self, decoder: msgspec.json.Decoder[_T], response: HttpResponse) -> _T:
        """Decode a 2xx body, wrapping msgspec's errors in :class:`DecodeError`."""
        try:
            return decoder.decode(response.body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise DecodeError(
                f"{self.name}: unreadable answer to HTTP {response.status}: {exc}",
                provider=self.name,
                snippet=snippet(response.body),
            ) from None

    def raise_for_error(self, response: HttpResponse) -> None:
        """Raise the matching :class:`APIError` if ``response`` is an HTTP error."""
        if response.status < 300 and response.status >= 200:
            return
        raise self.error_from(response)

    def error_from(self, response: HttpResponse, *, as_status: int | None = None) -> APIError:
        """The :class:`APIError` an error answer stands for, whatever shape its body has.

        ``as_status`` classifies an error carried inside a 2xx answer (an envelope ``code``) as if it were that
        HTTP status; ``status_code`` stays the real one."""
        status = response.status if as_status is None else as_status
        error_cls = error_class_for_status(status)
        body = _read_error_body(response.body)
        code = message = None
        request_id = response.request_id
        if body is not None:
            request_id = request_id or body.request_id
            code, message = error_code(body.error, body.code), error_message(body.error, body.message, body.msg)
            base = body.base_resp
            if base is not None and base.status_code not in (None, 0, "0"):
                code = base.status_code
                message = message or base.status_msg
                cls = _minimax_class(base.status_code)
                if cls is not None and error_cls in (APIError, BadRequestError):
                    error_cls = cls
        return make_api_error(
            error_cls,
            redact(message or snippet(response.body, 120) or f"HTTP {response.status}"),
            provider=self.name,
            status_code=response.status,
            code=code,
            request_id=request_id,
            headers=response.headers,
        )

    def base_resp_error(self, response: HttpResponse, base: _BaseResp | None) -> APIError | None:
        """The error a MiniMax-style ``base_resp`` with a non-zero code stands for, if any."""
        if base is None or base.status_code in (None, 0, "0"):
            return None
        cls = _minimax_class(base.status_code) or APIError
        return make_api_error(
            cls,
            redact(base.status_msg or "error"),
            provider=self.name,
            status_code=response.status,
            code=base.status_code,
            request_id=response.request_id,
            headers=response.headers,
        )


def _read_error_body(body: bytes) -> _ErrorBody | None:
    try:
        return _decode_error_body(body) if body else None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


def error_code(error: ErrorObject | str | None, fallback: int | str | None) -> int | str | None:
    """The most specific code an error object carries: a word code (``"idempotency_in_progress"``), else its
    ``type`` (``"invalid_request_error"``), else a numeric code; ``fallback`` (the envelope's) without one."""
    if not isinstance(error, ErrorObject):
        return fallback
    word = error.code if isinstance(error.code, str) and not error.code.strip().isdigit() else None
    return word or error.type or (error.code if error.code not in (None, "") else fallback)


def error_message(error: ErrorObject | str | None, *others: str | None) -> str | None:
    """The first message given: ``error.message`` (or ``error`` itself as a string), else ``others`` in order."""
    first = error.message if isinstance(error, ErrorObject) else error
    return next((text for text in (first, *others) if text), None)


def _minimax_class(code: int | str | None) -> type[APIError] | None:
    try:
        return _MINIMAX_CODES.get(int(code)) if code is not None else None
    except ValueError:
        return None


def as_float(value: float | str | None) -> float | None:
    """A number from a loosely typed field (``"50"``, ``50`` or ``50.0``), ``None`` when unusable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None


def as_size(value: float | str | None) -> int | None:
    """A pixel size; ``None`` when absent, unusable or not positive (MiniMax sends 0 until the video exists)."""
    number = as_float(value)
    return int(number) if number is not None and number >= 1 else None


def as_progress(value: float | str | None) -> int | None:
    """Progress clamped to 0-100, ``None`` when absent or unusable."""
    number = as_float(value)
    return None if number is None else int(min(max(number, 0.0), 100.0))


def first_url(value: str | list[str] | None) -> str | None:
    """A URL given either as a string or as an array of strings."""
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v), None)
    return value or None
