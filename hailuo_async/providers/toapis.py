"""toapis (``https://toapis.com``): wire structs and codec.

Submit ``POST /v1/videos/generations`` -> flat ``{id, object: "generation.task", ...}``; status
``GET /v1/videos/generations/{id}`` (flat) with the video at ``result.data[0].url``, else ``result.url``, else
``url``. Options ride in ``metadata``; frames must be public URLs (no base64). Every submit carries the client's
own id as ``client_business_id``, and ``GET /v1/videos/generations/{client_business_id}`` finds the task it
created, which settles a submit whose answer was lost. See docs/providers.md, section B and "Additions".
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from .._exceptions import DecodeError
from .._http import HttpRequest, HttpResponse, Route
from .._models import FrameKind, GenerationRequest, TaskState, TaskStatus
from ._base import (
    ACCEPT_JSON,
    Provider,
    as_progress,
    first_url,
    flags,
    map_status_word,
    multipart_image,
    path_segment,
)
from ._rules import RULES, ModelRules

__all__ = ["Toapis"]


class _LegacyItem(msgspec.Struct):
    task_id: str | int | None = None
    id: str | int | None = None


class _SubmitAnswer(msgspec.Struct):
    id: str | int | None = None
    task_id: str | int | None = None
    # The ru/la copies of the page show apimart's envelope; accept it too.
    data: list[_LegacyItem] | _LegacyItem | None = None


class _ResultItem(msgspec.Struct):
    url: str | list[str] | None = None


class _Result(msgspec.Struct):
    data: list[_ResultItem] = []
    url: str | list[str] | None = None


class _Error(msgspec.Struct):
    code: int | str | None = None
    message: str | None = None


class _Task(msgspec.Struct):
    id: str | int | None = None
    status: str = ""
    progress: float | str | None = None
    created_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None
    result: _Result | None = None
    url: str | list[str] | None = None
    error: _Error | str | None = None


class _StatusAnswer(_Task):
    data: _Task | None = None


class _UploadData(msgspec.Struct):
    url: str


class _UploadAnswer(msgspec.Struct):
    success: bool = True
    message: str | None = None
    data: _UploadData | None = None
    url: str | None = None


_decode_submit = msgspec.json.Decoder(_SubmitAnswer, strict=False)
_decode_status = msgspec.json.Decoder(_StatusAnswer, strict=False)
_decode_upload = msgspec.json.Decoder(_UploadAnswer, strict=False)


class Toapis(Provider):
    """The toapis gateway.

    Every submit body carries the engine's per-item idempotency key as ``client_business_id``. toapis does not
    deduplicate submits by it (:attr:`honours_idempotency_key` stays false), but it can find the task a key
    created: :meth:`build_lookup` / :meth:`parse_lookup`. The key is scoped to the API key's user: the same key
    sent with another user's API key names another task (or none).
    """

    name: ClassVar[str] = "toapis"
    default_base_url: ClassVar[str] = "https://toapis.com"
    env_var: ClassVar[str] = "TOAPIS_API_KEY"
    model_rules: ClassVar[dict[str, ModelRules]] = RULES["toapis"]
    frame_sources: ClassVar[frozenset[FrameKind]] = frozenset({"url"})
    upload_limit: ClassVar[int | None] = 10 * 1024 * 1024
    submit_path: ClassVar[str] = "/v1/videos/generations"
    body_key_field: ClassVar[str | None] = "client_business_id"
    can_look_up_submits: ClassVar[bool] = True

    def submit_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model}
        if request.prompt is not None:
            body["prompt"] = request.prompt
        if request.duration is not None:
            body["duration"] = request.duration
        if request.resolution is not None:
            body["resolution"] = request.resolution.upper()  # toapis spells it with a capital P
        if request.first_frame is not None:
            body["image_urls"] = [str(request.first_frame)]
        metadata: dict[str, Any] = {}
        if request.last_frame is not None:
            metadata["last_frame_image"] = str(request.last_frame)
        metadata.update(flags(request, watermark="aigc_watermark"))
        if metadata:
            body["metadata"] = metadata
        return body

    def parse_submit(self, response: HttpResponse) -> str:
        self.raise_for_error(response)
        answer = self.decode(_decode_submit, response)
        task_id = answer.id if answer.id is not None else answer.task_id
        if task_id is None:
            data = answer.data
            item = data[0] if isinstance(data, list) and data else data
            if isinstance(item, _LegacyItem):
                task_id = item.task_id if item.task_id is not None else item.id
        if task_id is None or str(task_id) == "":
            raise DecodeError("toapis: submit answer carries no task id", provider=self.name)
        return str(task_id)

    def build_status(self, task_id: str) -> HttpRequest:
        return _get_generation(task_id, "status")

    def parse_status(self, response: HttpResponse) -> TaskStatus:
        task = self._task(response)
        if not task.status:
            raise DecodeError("toapis: status answer carries no status", provider=self.name)
        state = map_status_word(task.status) or TaskState.RUNNING
        video_url = None
        if task.result is not None:
            items = task.result.data
            video_url = (first_url(items[0].url) if items else None) or first_url(task.result.url)
        video_url = video_url or first_url(task.url)
        error = code = None
        if state is TaskState.FAILED:
            if isinstance(task.error, _Error):
                error, code = task.error.message, task.error.code
            elif isinstance(task.error, str):
                error = task.error
            error = error or "task failed"
        if state is TaskState.COMPLETED and video_url is None:
            raise DecodeError("toapis: completed task without a video URL", provider=self.name)
        return TaskStatus(
            state=state,
            provider_status=task.status,
            progress=as_progress(task.progress),
            video_url=video_url,
            expires_at=task.expires_at,
            error=error,
            error_code=code,
            created_at=task.created_at,
            finished_at=task.completed_at,
        )

    def build_lookup(self, key: str) -> HttpRequest:
        """``GET /v1/videos/generations/{key}``: the task whose submit carried ``client_business_id = key``."""
        return _get_generation(key, "lookup")

    def parse_lookup(self, response: HttpResponse) -> str | None:
        """The real task id (the task's ``id``), or ``None`` when toapis answers 404 with a JSON error body: no
        task carries the key. A 404 that is not toapis's JSON (a proxy's HTML page) proves nothing and raises."""
        if response.status == 404 and _is_json_object(response.body):
            return None
        task = self._task(response)
        if task.id is None or str(task.id) == "":
            raise DecodeError("toapis: look-up answer carries no task id", provider=self.name)
        return str(task.id)

    def _task(self, response: HttpResponse) -> _Task:
        """The task a status or look-up answer describes (flat, or wrapped in ``data`` by older pages)."""
        self.raise_for_error(response)
        answer = self.decode(_decode_status, response)
        return answer.data if answer.data is not None and not answer.status else answer

    def build_upload(self, filename: str, content_type: str, data: bytes) -> HttpRequest:
        header, body = multipart_image({"purpose": "generation"}, filename, content_type, data)
        return HttpRequest(
            method="POST",
            path="/v1/uploads/images",
            route="upload",
            headers=(("Content-Type", header), *ACCEPT_JSON),
            body=body,
        )

    def parse_upload(self, response: HttpResponse) -> tuple[str, float | None]:
        """The uploaded image's URL; toapis does not say how long it works (``None``)."""
        self.raise_for_error(response)
        answer = self.decode(_decode_upload, response)
        url = answer.data.url if answer.data is not None else answer.url
        if not answer.success or not url:
            raise self.error_from(response, as_status=400)
        return url, None


def _get_generation(identifier: str, route: Route) -> HttpRequest:
    """``GET /v1/videos/generations/{identifier}``: one task, named by its id or by the client's own key."""
    return HttpRequest(
        method="GET", path=f"/v1/videos/generations/{path_segment(identifier)}", route=route, headers=ACCEPT_JSON
    )


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(msgspec.json.decode(body), dict)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
