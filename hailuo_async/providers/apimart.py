"""apimart (``https://api.apimart.ai``): wire structs and codec.

Submit ``POST /v1/videos/generations`` -> ``data[0].task_id``; status ``GET /v1/tasks/{id}`` -> ``{code, data}``
with the video at ``data.result.videos[0].url[0]`` (an array, sometimes a plain string). Honours
``Idempotency-Key``. See providers.md, section A.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from .._exceptions import APIError, DecodeError
from .._http import HttpRequest, HttpResponse, redact
from .._models import FrameKind, GenerationRequest, TaskState, TaskStatus
from ._base import (
    ACCEPT_JSON,
    MODEL,
    Provider,
    as_float,
    as_progress,
    error_class_for_status,
    first_url,
    flags,
    make_api_error,
    map_status_word,
    multipart_image,
    path_segment,
)

__all__ = ["Apimart"]


class _SubmitItem(msgspec.Struct):
    task_id: str | int | None = None
    id: str | int | None = None


class _SubmitAnswer(msgspec.Struct):
    code: int | str | None = None
    data: list[_SubmitItem] | _SubmitItem | None = None
    msg: str | None = None
    message: str | None = None


class _Video(msgspec.Struct):
    url: str | list[str] | None = None
    expires_at: float | None = None


class _Result(msgspec.Struct):
    videos: list[_Video] = []
    url: str | list[str] | None = None


class _Error(msgspec.Struct):
    code: int | str | None = None
    message: str | None = None
    type: str | None = None


class _Task(msgspec.Struct):
    id: str | int | None = None
    status: str = ""
    progress: float | str | None = None
    created: float | None = None
    estimated_time: float | None = None
    completed: float | None = None
    result: _Result | None = None
    error: _Error | str | None = None


class _StatusAnswer(msgspec.Struct):
    code: int | str | None = None
    data: _Task | None = None
    # Some pages show the task without the envelope; these catch that shape.
    id: str | int | None = None
    status: str = ""
    msg: str | None = None
    message: str | None = None


class _Upload(msgspec.Struct):
    url: str


_decode_submit = msgspec.json.Decoder(_SubmitAnswer, strict=False)
_decode_status = msgspec.json.Decoder(_StatusAnswer, strict=False)
_decode_task = msgspec.json.Decoder(_Task, strict=False)
_decode_upload = msgspec.json.Decoder(_Upload, strict=False)


def _envelope_ok(code: int | str | None) -> bool:
    return code in (None, 200, 0, "200", "0", "success")


class Apimart(Provider):
    """The apimart gateway."""

    name: ClassVar[str] = "apimart"
    default_base_url: ClassVar[str] = "https://api.apimart.ai"
    env_var: ClassVar[str] = "APIMART_API_KEY"
    durations: ClassVar[tuple[int, int]] = (5, 10)
    frame_sources: ClassVar[frozenset[FrameKind]] = frozenset({"url", "data_uri"})
    honours_idempotency_key: ClassVar[bool] = True
    upload_limit: ClassVar[int | None] = 20 * 1024 * 1024
    submit_path: ClassVar[str] = "/v1/videos/generations"

    def submit_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": MODEL, "prompt": request.prompt or ""}
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

    def parse_submit(self, response: HttpResponse) -> str:
        self.raise_for_error(response)
        answer = self.decode(_decode_submit, response)
        if not _envelope_ok(answer.code):
            raise self._envelope_error(response, answer.code, answer.message or answer.msg)
        data = answer.data
        item = data[0] if isinstance(data, list) and data else data
        task_id = None
        if isinstance(item, _SubmitItem):
            task_id = item.task_id if item.task_id is not None else item.id
        if task_id is None or str(task_id) == "":
            raise DecodeError("apimart: submit answer carries no task id", provider=self.name)
        return str(task_id)

    def build_status(self, task_id: str) -> HttpRequest:
        return HttpRequest(
            method="GET",
            path=f"/v1/tasks/{path_segment(task_id)}?language=en",
            route="status",
            headers=ACCEPT_JSON,
        )

    def parse_status(self, response: HttpResponse) -> TaskStatus:
        self.raise_for_error(response)
        answer = self.decode(_decode_status, response)
        if not _envelope_ok(answer.code):
            raise self._envelope_error(response, answer.code, answer.message or answer.msg)
        task = answer.data
        if task is None:
            if not answer.status:
                raise DecodeError("apimart: status answer carries no task", provider=self.name)
            task = self.decode(_decode_task, response)
        state = map_status_word(task.status) or TaskState.RUNNING
        video_url = expires_at = None
        result = task.result
        if result is not None:
            video = result.videos[0] if result.videos else None
            video_url = first_url(video.url) if video is not None else first_url(result.url)
            expires_at = video.expires_at if video is not None else None
        error = code = None
        if state is TaskState.FAILED:
            if isinstance(task.error, _Error):
                error, code = task.error.message, task.error.code
            elif isinstance(task.error, str):
                error = task.error
            if not error:
                error = "cancelled" if task.status.strip().lower() in ("cancelled", "canceled") else "task failed"
        if state is TaskState.COMPLETED and video_url is None:
            raise DecodeError("apimart: completed task without a video URL", provider=self.name)
        return TaskStatus(
            state=state,
            provider_status=task.status,
            progress=as_progress(task.progress),
            eta=as_float(task.estimated_time),
            video_url=video_url,
            expires_at=expires_at,
            error=error,
            error_code=code,
            created_at=task.created,
        )

    def build_upload(self, filename: str, content_type: str, data: bytes) -> HttpRequest:
        header, body = multipart_image({}, filename, content_type, data)
        return HttpRequest(
            method="POST",
            path="/v1/uploads/images",
            route="upload",
            headers=(("Content-Type", header), *ACCEPT_JSON),
            body=body,
        )

    def parse_upload(self, response: HttpResponse) -> str:
        self.raise_for_error(response)
        url = self.decode(_decode_upload, response).url
        if not url:
            raise DecodeError("apimart: upload answer carries no url", provider=self.name)
        return url

    def _envelope_error(self, response: HttpResponse, code: int | str | None, message: str | None) -> APIError:
        try:
            status = int(code) if code is not None else 500
        except ValueError:
            status = 500
        return make_api_error(
            error_class_for_status(status if 300 <= status < 600 else 500),
            redact(message or f"error code {code}"),
            provider=self.name,
            status_code=response.status,
            code=code,
            request_id=response.request_id,
            headers=response.headers,
        )
