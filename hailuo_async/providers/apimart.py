"""apimart (``https://api.apimart.ai``): wire structs and codec.

Submit ``POST /v1/videos/generations`` -> ``data[0].task_id`` (legacy answers) or ``data.id`` (response version
2026-07-27, HTTP 202); status ``GET /v1/tasks/{id}`` -> ``{code, data}`` with the video at
``data.result.videos[0].url[0]`` (an array, sometimes a plain string). Errors come as HTTP errors or inside a 2xx
envelope (``{"code": 400, "error": {...}}``). Honours ``Idempotency-Key``. Webhook: the submit's ``webhook`` base
URL gets ``<webhook>/callback`` POSTs on terminal states, each body a status answer, unsigned. See
docs/providers.md, section A (A.5 for the webhook).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import msgspec

from .._exceptions import DecodeError
from .._http import HttpRequest, HttpResponse
from .._models import FrameKind, GenerationRequest, TaskState, TaskStatus
from ._base import (
    ACCEPT_JSON,
    ErrorObject,
    Provider,
    WebhookEvent,
    as_float,
    as_progress,
    as_size,
    first_url,
    flags,
    map_status_word,
    multipart_image,
    path_segment,
)
from ._rules import RULES, ModelRules

__all__ = ["RESPONSE_VERSION_HEADER", "UPLOAD_URL_TTL", "Apimart"]

RESPONSE_VERSION_HEADER = "X-APIMart-Response-Version"
"""Header choosing the shape of apimart's answers (docs/providers.md, A.1)."""

UPLOAD_URL_TTL = 72 * 3600.0
"""Seconds an uploaded image's URL works after its ``created_at`` (docs/providers.md, A.6)."""


class _SubmitItem(msgspec.Struct):
    task_id: str | int | None = None
    id: str | int | None = None


class _Envelope(msgspec.Struct):
    """What any apimart answer may carry besides its payload: a ``code`` and an ``error`` (the rest of an
    error body is read by :meth:`Provider.error_from`)."""

    code: int | str | None = None
    error: ErrorObject | str | None = None

    def has_payload(self) -> bool:
        """Whether the answer carries what was asked for (an ``error`` next to it is then not the answer's)."""
        raise NotImplementedError


class _SubmitAnswer(_Envelope):
    data: list[_SubmitItem] | _SubmitItem | None = None

    def has_payload(self) -> bool:
        return self.data is not None


class _Video(msgspec.Struct):
    url: str | list[str] | None = None
    expires_at: float | None = None
    width: float | str | None = None
    height: float | str | None = None


class _Result(msgspec.Struct):
    videos: list[_Video] = []
    url: str | list[str] | None = None


class _Task(msgspec.Struct):
    id: str | int | None = None
    status: str = ""
    progress: float | str | None = None
    created: float | None = None
    estimated_time: float | None = None
    completed: float | None = None
    actual_time: float | str | None = None
    cost: float | str | None = None
    credits_cost: float | str | None = None
    result: _Result | None = None
    error: ErrorObject | str | None = None


class _StatusAnswer(_Envelope):
    data: _Task | None = None
    # Some pages show the task without the envelope; this catches that shape (its error is the task's).
    status: str = ""

    def has_payload(self) -> bool:
        return self.data is not None or bool(self.status)


class _UploadAnswer(_Envelope):
    url: str | None = None
    created_at: float | None = None
    expires_at: float | None = None

    def has_payload(self) -> bool:
        return bool(self.url)


_AnswerT = TypeVar("_AnswerT", bound=_Envelope)


_decode_submit = msgspec.json.Decoder(_SubmitAnswer, strict=False)
_decode_status = msgspec.json.Decoder(_StatusAnswer, strict=False)
_decode_task = msgspec.json.Decoder(_Task, strict=False)
_decode_upload = msgspec.json.Decoder(_UploadAnswer, strict=False)


def _code_number(code: int | str | None) -> int | None:
    """An envelope code as a number (``202`` or ``"202"``); ``None`` for a word or nothing."""
    try:
        return int(code) if code is not None and not isinstance(code, bool) else None
    except ValueError:
        return None


def _envelope_ok(code: int | str | None) -> bool:
    """Whether an envelope ``code`` means success: absent, ``0``, ``"success"`` or any 2xx (the newer response
    version answers a submit with ``202``)."""
    number = _code_number(code)
    if number is not None:
        return number == 0 or 200 <= number < 300
    return code is None or str(code).strip().lower() == "success"


def _error_status(answer: _Envelope) -> int:
    """The HTTP status an error inside a 2xx answer stands for: its envelope code, else its error's numeric
    code, else 500."""
    inner = answer.error.code if isinstance(answer.error, ErrorObject) else None
    for code in (answer.code, inner):
        number = _code_number(code)
        if number is not None and 300 <= number < 600:
            return number
    return 500


def _first_video(result: _Result | None) -> _Video | None:
    return result.videos[0] if result is not None and result.videos else None


def _failure(task: _Task) -> tuple[str, int | str | None]:
    """The reason and code of a failed or cancelled task."""
    error = task.error
    reason = error.message if isinstance(error, ErrorObject) else error
    if not reason:
        reason = "cancelled" if task.status.strip().lower() in ("cancelled", "canceled") else "task failed"
    return reason, error.code if isinstance(error, ErrorObject) else None


class Apimart(Provider):
    """The apimart gateway."""

    name: ClassVar[str] = "apimart"
    default_base_url: ClassVar[str] = "https://api.apimart.ai"
    env_var: ClassVar[str] = "APIMART_API_KEY"
    model_rules: ClassVar[dict[str, ModelRules]] = RULES["apimart"]
    frame_sources: ClassVar[frozenset[FrameKind]] = frozenset({"url", "data_uri"})
    honours_idempotency_key: ClassVar[bool] = True
    refunds_failed: ClassVar[bool] = True  # failed tasks are refunded (docs/providers.md, "Prices")
    prompt_required: ClassVar[bool] = True  # "prompt ... required" on the Hailuo-02 page (docs/providers.md, A.2)
    upload_limit: ClassVar[int | None] = 20 * 1024 * 1024
    submit_path: ClassVar[str] = "/v1/videos/generations"
    callback_field: ClassVar[tuple[str, ...] | None] = ("webhook",)
    webhook_suffix: ClassVar[str] = "/callback"
    response_version: ClassVar[str | None] = None
    """The ``X-APIMart-Response-Version`` sent with submits and status checks; ``None`` sends none and gets the
    legacy shapes. Both shapes are read whatever this says: ``"2026-07-27"`` answers a submit with HTTP 202,
    ``code`` 202 and ``data`` an object ``{id, status}`` instead of a list of ``{task_id}``."""

    def submit_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt or ""}
        if request.duration is not None:
            body["duration"] = request.duration
        if request.resolution is not None:
            body["resolution"] = request.resolution  # apimart spells it with a lower-case p
        if request.first_frame is not None:
            body["first_frame_image"] = str(request.first_frame)
        if request.last_frame is not None:
            body["last_frame_image"] = str(request.last_frame)
        body.update(flags(request, watermark="watermark"))
        return body

    def build_submit(
        self, request: GenerationRequest, *, idempotency_key: str | None = None, callback_url: str | None = None
    ) -> HttpRequest:
        return self._versioned(
            super().build_submit(request, idempotency_key=idempotency_key, callback_url=callback_url)
        )

    def parse_submit(self, response: HttpResponse) -> str:
        answer = self._open(_decode_submit, response)
        data = answer.data
        item = data[0] if isinstance(data, list) and data else data
        task_id = None
        if isinstance(item, _SubmitItem):
            task_id = item.task_id if item.task_id is not None else item.id
        if task_id is None or str(task_id) == "":
            raise DecodeError("apimart: submit answer carries no task id", provider=self.name)
        return str(task_id)

    def build_status(self, task_id: str) -> HttpRequest:
        return self._versioned(
            HttpRequest(
                method="GET",
                path=f"/v1/tasks/{path_segment(task_id)}?language=en",
                route="status",
                headers=ACCEPT_JSON,
            )
        )

    def parse_status(self, response: HttpResponse) -> TaskStatus:
        answer = self._open(_decode_status, response)
        task = answer.data
        if task is None:
            if not answer.status:
                raise DecodeError("apimart: status answer carries no task", provider=self.name)
            task = self.decode(_decode_task, response)
        state = map_status_word(task.status) or TaskState.RUNNING
        video = _first_video(task.result)
        video_url = first_url(video.url) if video is not None else None
        if video_url is None and task.result is not None:
            video_url = first_url(task.result.url)
        if state is TaskState.COMPLETED and video_url is None:
            raise DecodeError("apimart: completed task without a video URL", provider=self.name)
        error, code = _failure(task) if state is TaskState.FAILED else (None, None)
        return TaskStatus(
            state=state,
            provider_status=task.status,
            progress=as_progress(task.progress),
            eta=as_float(task.estimated_time),
            video_url=video_url,
            expires_at=video.expires_at if video is not None else None,
            error=error,
            error_code=code,
            created_at=task.created,
            cost=as_float(task.cost),
            credits_cost=as_float(task.credits_cost),
            actual_time=as_float(task.actual_time),
            finished_at=task.completed,
            video_width=as_size(video.width) if video is not None else None,
            video_height=as_size(video.height) if video is not None else None,
        )

    def parse_webhook(self, body: bytes) -> WebhookEvent:
        """A delivery to ``<webhook>/callback``: the body is the task's status answer (docs/providers.md, A.5), so
        the event carries the full status, video URL included."""
        response = HttpResponse(status=200, headers={}, body=body)
        answer = self.decode(_decode_status, response)
        task = answer.data if answer.data is not None else self.decode(_decode_task, response)
        if task.id is None or str(task.id) == "":
            raise DecodeError("apimart: webhook body carries no task id", provider=self.name)
        return WebhookEvent(kind="status", task_id=str(task.id), status=self.webhook_status(body))

    def build_upload(self, filename: str, content_type: str, data: bytes) -> HttpRequest:
        header, body = multipart_image({}, filename, content_type, data)
        return HttpRequest(
            method="POST",
            path="/v1/uploads/images",
            route="upload",
            headers=(("Content-Type", header), *ACCEPT_JSON),
            body=body,
        )

    def parse_upload(self, response: HttpResponse) -> tuple[str, float | None]:
        """The uploaded image's URL and its expiry: the answer's ``expires_at`` if it gives one, else
        :data:`UPLOAD_URL_TTL` after its ``created_at``; ``None`` when it gives neither."""
        answer = self._open(_decode_upload, response)
        if not answer.url:
            raise DecodeError("apimart: upload answer carries no url", provider=self.name)
        expires_at = answer.expires_at
        if expires_at is None and answer.created_at is not None:
            expires_at = answer.created_at + UPLOAD_URL_TTL
        return answer.url, as_float(expires_at)

    # -- envelopes ------------------------------------------------------------------------------------------

    def _versioned(self, request: HttpRequest) -> HttpRequest:
        """``request`` asking for :attr:`response_version`, when one is set."""
        if self.response_version is None:
            return request
        headers = (*request.headers, (RESPONSE_VERSION_HEADER, self.response_version))
        return msgspec.structs.replace(request, headers=headers)

    def _open(self, decoder: msgspec.json.Decoder[_AnswerT], response: HttpResponse) -> _AnswerT:
        """The decoded answer, once neither its HTTP status nor its envelope says it is an error."""
        self.raise_for_error(response)
        answer = self.decode(decoder, response)
        if not _envelope_ok(answer.code) or (answer.error is not None and not answer.has_payload()):
            raise self.error_from(response, as_status=_error_status(answer))
        return answer
