"""The official MiniMax API (``https://api.minimax.io``): wire structs and codec.

Submit ``POST /v1/video_generation`` -> ``task_id``; status ``GET /v1/query/video_generation?task_id=`` ->
``Preparing|Queueing|Processing|Success|Fail`` and a ``file_id``; then ``GET /v1/files/retrieve?file_id=`` ->
``file.download_url``. Errors usually arrive as HTTP 200 with a non-zero ``base_resp.status_code``. Answers for
unfinished tasks may carry ``file_id: ""`` and ``video_width``/``video_height`` of 0: not there yet.
Webhook: ``callback_url`` first gets ``{"challenge": ...}`` to echo within 3 s (else the create fails with 2013),
then one unsigned POST per state change in the query's shape. See docs/providers.md, section C (C.7 for the
callback).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import msgspec

from .._exceptions import DecodeError
from .._http import HttpRequest, HttpResponse
from .._models import FrameKind, GenerationRequest, TaskState, TaskStatus
from ._base import ACCEPT_JSON, Provider, WebhookEvent, _BaseResp, as_size, flags, map_status_word
from ._rules import RULES, ModelRules

__all__ = ["Minimax"]


class _SubmitAnswer(msgspec.Struct):
    task_id: str | int | None = None
    base_resp: _BaseResp | None = None


class _QueryAnswer(msgspec.Struct):
    task_id: str | int | None = None
    status: str = ""
    file_id: str | int | None = None
    video_width: float | str | None = None
    video_height: float | str | None = None
    base_resp: _BaseResp | None = None


class _File(msgspec.Struct):
    download_url: str | None = None
    file_id: str | int | None = None


class _RetrieveAnswer(msgspec.Struct):
    file: _File | None = None
    base_resp: _BaseResp | None = None


_decode_submit = msgspec.json.Decoder(_SubmitAnswer, strict=False)
_decode_query = msgspec.json.Decoder(_QueryAnswer, strict=False)
_decode_retrieve = msgspec.json.Decoder(_RetrieveAnswer, strict=False)


class _Callback(msgspec.Struct):
    challenge: str | None = None
    task_id: str | int | None = None


_decode_callback = msgspec.json.Decoder(_Callback, strict=False)


class Minimax(Provider):
    """The official MiniMax API."""

    name: ClassVar[str] = "minimax"
    default_base_url: ClassVar[str] = "https://api.minimax.io"
    env_var: ClassVar[str] = "MINIMAX_API_KEY"
    model_rules: ClassVar[dict[str, ModelRules]] = RULES["minimax"]
    frame_sources: ClassVar[frozenset[FrameKind]] = frozenset({"url", "data_uri"})
    submit_path: ClassVar[str] = "/v1/video_generation"
    callback_field: ClassVar[tuple[str, ...] | None] = ("callback_url",)
    submit_budget_per_minute: ClassVar[float | None] = 20.0
    """Video-generation RPM for paid accounts (docs/providers.md, C.7); free accounts get 5 and learn it from
    1002s."""

    def submit_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model}
        if request.prompt is not None:
            body["prompt"] = request.prompt
        if request.duration is not None:
            body["duration"] = request.duration
        if request.resolution is not None:
            body["resolution"] = request.resolution.upper()
        if request.first_frame is not None:
            body["first_frame_image"] = str(request.first_frame)
        if request.last_frame is not None:
            body["last_frame_image"] = str(request.last_frame)
        body.update(flags(request, watermark="aigc_watermark"))
        return body

    def parse_submit(self, response: HttpResponse) -> str:
        self.raise_for_error(response)
        answer = self.decode(_decode_submit, response)
        error = self.base_resp_error(response, answer.base_resp)
        if error is not None:
            raise error
        if answer.task_id is None or str(answer.task_id) == "":
            raise DecodeError("minimax: submit answer carries no task_id", provider=self.name)
        return str(answer.task_id)

    def build_status(self, task_id: str) -> HttpRequest:
        return HttpRequest(
            method="GET",
            path=f"/v1/query/video_generation?task_id={quote(task_id, safe='')}",
            route="status",
            headers=ACCEPT_JSON,
        )

    def parse_status(self, response: HttpResponse) -> TaskStatus:
        self.raise_for_error(response)
        answer = self.decode(_decode_query, response)
        state = map_status_word(answer.status) if answer.status else None
        base = answer.base_resp
        failed_code = base.status_code if base is not None and base.status_code not in (None, 0, "0") else None
        if state is not TaskState.FAILED:
            # A non-zero base_resp without a failed task is an API error (auth, rate limit, ...).
            error = self.base_resp_error(response, base)
            if error is not None:
                raise error
            if not answer.status:
                raise DecodeError("minimax: query answer carries no status", provider=self.name)
        if state is TaskState.FAILED:
            reason = (base.status_msg if base is not None and failed_code is not None else None) or "task failed"
            return TaskStatus(state=state, provider_status=answer.status, error=reason, error_code=failed_code)
        file_id = _file_id(answer.file_id)
        if state is TaskState.COMPLETED and file_id is None:
            raise DecodeError(
                "minimax: finished task without a file_id (its video cannot be retrieved)",
                provider=self.name,
                task_id=None if answer.task_id is None else str(answer.task_id),
            )
        return TaskStatus(
            state=state or TaskState.RUNNING,
            provider_status=answer.status,
            file_id=file_id,
            video_width=as_size(answer.video_width),
            video_height=as_size(answer.video_height),
        )

    def parse_webhook(self, body: bytes) -> WebhookEvent:
        """``{"challenge": ...}`` before the task exists (a ``"challenge"`` event: echo it), else a status change in
        the query's shape, read as :meth:`parse_status` reads it (status words in any case; ``file_id`` once
        finished). docs/providers.md, C.7."""
        callback = self.decode(_decode_callback, HttpResponse(status=200, headers={}, body=body))
        if callback.challenge is not None:
            return WebhookEvent(kind="challenge", challenge=callback.challenge)
        if callback.task_id is None or str(callback.task_id) == "":
            raise DecodeError("minimax: callback body carries no task_id", provider=self.name)
        return WebhookEvent(kind="status", task_id=str(callback.task_id), status=self.webhook_status(body))

    def build_fetch(self, file_id: str) -> HttpRequest:
        return HttpRequest(
            method="GET",
            path=f"/v1/files/retrieve?file_id={quote(file_id, safe='')}",
            route="retrieve",
            headers=ACCEPT_JSON,
        )

    def parse_fetch(self, response: HttpResponse) -> tuple[str, float | None]:
        self.raise_for_error(response)
        answer = self.decode(_decode_retrieve, response)
        error = self.base_resp_error(response, answer.base_resp)
        if error is not None:
            raise error
        url = answer.file.download_url if answer.file is not None else None
        if not url:
            raise DecodeError("minimax: files/retrieve answer carries no download_url", provider=self.name)
        return url, None


def _file_id(value: str | int | None) -> str | None:
    """The file id as text; ``None`` while there is none (MiniMax sends ``""`` until the video exists)."""
    text = "" if value is None else str(value).strip()
    return text or None
