"""The three providers' dialects: request validation, response bodies and error bodies.

Written from ``providers.md`` alone, independently of the client code, so that the simulator is an oracle for it.
Nothing here does I/O: :mod:`._api` decides *what* happens and asks the dialect *how* its provider says it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import msgspec

from ._state import Provider, Task, TaskState

__all__ = ["MODEL", "Apimart", "Dialect", "ErrorKind", "Minimax", "Normalized", "Toapis", "camera_error"]

MODEL = "MiniMax-Hailuo-02"
MAX_PROMPT_CHARS = 2000

CAMERA_DIRECTIVES = frozenset(
    {
        "Pan left",
        "Pan right",
        "Tilt up",
        "Tilt down",
        "Push in",
        "Pull out",
        "Pedestal up",
        "Pedestal down",
        "Truck left",
        "Truck right",
        "Zoom in",
        "Zoom out",
        "Shake",
        "Tracking shot",
        "Static shot",
    }
)
_BRACKET = re.compile(r"\[([^\[\]]*)\]")

ErrorKind = Literal[
    "invalid",
    "unauthorized",
    "invalid_key",
    "no_credits",
    "rate_limited",
    "not_found",
    "rejected",
    "conflict",
]

_CONTENT_POLICY = "Generation failed: Content violates the content policy"
_VIDEO_SIZE = {"512P": (910, 512), "768P": (1366, 768), "1080P": (1920, 1080)}


class Normalized(msgspec.Struct, frozen=True):
    """The parts of a valid submit body the simulator needs."""

    prompt: str
    resolution: str  # upper-case P, e.g. "768P"


def camera_error(prompt: str) -> str | None:
    """Check ``[...]`` camera directives: each one of the 15 documented, at most 3 per bracket."""
    for inner in _BRACKET.findall(prompt):
        moves = [move.strip() for move in inner.split(",")]
        if len(moves) > 3:
            return f"at most 3 camera directives per bracket, got [{inner}]"
        for move in moves:
            if move not in CAMERA_DIRECTIVES:
                return f"unknown camera directive [{move}]"
    return None


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _is_data_image(value: object) -> bool:
    return isinstance(value, str) and value.startswith("data:image/") and ";base64," in value


def _check_prompt(prompt: object, *, required: bool, camera: bool) -> str | None:
    if prompt is None and not required:
        return None
    if not isinstance(prompt, str) or (required and not prompt.strip()):
        return "prompt is required" if required else "prompt must be a string"
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"prompt must be at most {MAX_PROMPT_CHARS} characters, got {len(prompt)}"
    return camera_error(prompt) if camera else None


def _check_duration_resolution(
    body: dict[str, Any], durations: tuple[int, int], resolutions: tuple[str, str, str]
) -> tuple[str | None, str]:
    """Return (error message or None, resolution). The first duration and second resolution are the defaults."""
    duration = body.get("duration", durations[0])
    resolution = body.get("resolution", resolutions[1])
    if type(duration) is not int or duration not in durations:
        return f"duration must be {durations[0]} or {durations[1]}, got {duration!r}", ""
    if resolution not in resolutions:
        return f"resolution must be one of {', '.join(resolutions)}, got {resolution!r}", ""
    if resolution == resolutions[2] and duration != durations[0]:
        return f"{resolution} supports only duration {durations[0]}", ""
    return None, str(resolution)


def _check_bools(body: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in body and not isinstance(body[name], bool):
            return f"{name} must be a boolean"
    return None


class Dialect:
    """How one provider phrases things. Subclasses fill in the tables and body builders."""

    name: ClassVar[Provider]
    request_id_header: ClassVar[str] = "X-Request-Id"
    upload_limit: ClassVar[int] = 0
    # kind -> (HTTP status, error type or MiniMax code, default message)
    errors: ClassVar[dict[ErrorKind, tuple[int, Any, str]]]

    def validate(self, body: dict[str, Any]) -> Normalized | str:
        raise NotImplementedError

    def error(self, kind: ErrorKind, message: str | None = None) -> tuple[int, dict[str, Any]]:
        status, kind_type, default = self.errors[kind]
        return status, {"error": {"code": status, "message": message or default, "type": kind_type}}

    def server_error(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    def submit_body(self, task: Task, drift: bool) -> dict[str, Any]:
        raise NotImplementedError

    def status_body(
        self,
        task: Task,
        state: TaskState,
        progress: int,
        video: tuple[str, int] | None,
        drift: bool,
        now: float,
    ) -> dict[str, Any]:
        """``video`` is (signed URL, expiry) for a completed task; ``now`` is the monotonic clock."""
        raise NotImplementedError

    def upload_body(self, upload_id: str, url: str, filename: str, mime: str, size: int, now: float) -> Any:
        raise NotImplementedError

    def upload_error(self, message: str, too_large: bool) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


class Apimart(Dialect):
    """apimart: ``{"code":200,"data":...}`` envelopes, lower-case ``p`` resolutions, durations 5 | 10."""

    name = "apimart"
    upload_limit = 20 * 1024 * 1024
    errors: ClassVar[dict[ErrorKind, tuple[int, Any, str]]] = {
        "invalid": (400, "invalid_request_error", "Invalid request"),
        "unauthorized": (401, "authentication_error", "Authentication failed, please check your API key"),
        "invalid_key": (401, "authentication_error", "Authentication failed, please check your API key"),
        "no_credits": (402, "payment_required", "Insufficient balance, please top up and try again"),
        "rate_limited": (429, "rate_limit_error", "Too many requests, please try again later"),
        "not_found": (400, "invalid_request_error", "Invalid task ID"),
        "rejected": (400, "content_policy_violation", "Input violates the content policy"),
        "conflict": (409, "idempotency_key_reused", "Idempotency-Key was already used with a different body"),
    }
    _server_errors: ClassVar[dict[int, tuple[str, str]]] = {
        500: ("server_error", "Internal server error, please retry later"),
        502: ("bad_gateway", "Gateway error, server temporarily unavailable"),
        503: ("service_unavailable", "Service temporarily unavailable"),
    }

    def validate(self, body: dict[str, Any]) -> Normalized | str:
        if body.get("model") != MODEL:
            return f"model must be {MODEL!r}"
        prompt = body.get("prompt")
        # apimart documents no camera-directive rules, so any [...] text is accepted.
        problem = _check_prompt(prompt, required=True, camera=False)
        if problem:
            return problem
        problem, resolution = _check_duration_resolution(body, (5, 10), ("512p", "768p", "1080p"))
        if problem:
            return problem
        first, last = body.get("first_frame_image"), body.get("last_frame_image")
        for name, image in (("first_frame_image", first), ("last_frame_image", last)):
            if image is not None and not (_is_url(image) or _is_data_image(image)):
                return f"{name} must be an http(s) URL or a data:image/...;base64 URL"
        if last is not None and first is None:
            return "last_frame_image requires first_frame_image"
        problem = _check_bools(body, ("prompt_optimizer", "fast_pretreatment", "watermark"))
        if problem:
            return problem
        assert isinstance(prompt, str)
        return Normalized(prompt=prompt, resolution=resolution.upper())

    def server_error(self, status: int) -> dict[str, Any]:
        kind_type, message = self._server_errors[status]
        return {"error": {"code": status, "message": message, "type": kind_type}}

    def submit_body(self, task: Task, drift: bool) -> dict[str, Any]:
        return {"code": 200, "data": [{"status": "submitted", "task_id": task.task_id}]}

    def status_body(
        self,
        task: Task,
        state: TaskState,
        progress: int,
        video: tuple[str, int] | None,
        drift: bool,
        now: float,
    ) -> dict[str, Any]:
        alt = drift and task.alt
        if state == "queued":
            word = "submitted" if alt else "pending"
        elif state == "running":
            word = "in_progress" if alt else "processing"
        else:
            word = state
        data: dict[str, Any] = {
            "id": task.task_id,
            "status": word,
            "progress": progress,
            "created": int(task.created_wall),
            "estimated_time": task.estimated_time,
        }
        if video is not None:
            url, expires_at = video
            data["completed"] = int(task.created_wall + task.gen_time)
            data["actual_time"] = max(1, math.ceil(task.gen_time))
            data["result"] = {"videos": [{"url": url if alt else [url], "expires_at": expires_at}]}
        elif state == "failed":
            data["error"] = {"code": 422, "message": _CONTENT_POLICY, "type": "content_policy_violation"}
        return {"code": 200, "data": data}

    def upload_body(self, upload_id: str, url: str, filename: str, mime: str, size: int, now: float) -> Any:
        return {"url": url, "filename": filename, "content_type": mime, "bytes": size, "created_at": int(now)}

    def upload_error(self, message: str, too_large: bool) -> tuple[int, dict[str, Any]]:
        status = 413 if too_large else 400
        return status, {"error": {"code": status, "message": message, "type": "invalid_request_error"}}


class Toapis(Dialect):
    """toapis: flat ``generation.task`` objects, upper-case ``P``, durations 6 | 10, ``metadata`` options."""

    name = "toapis"
    upload_limit = 10 * 1024 * 1024
    errors: ClassVar[dict[ErrorKind, tuple[int, Any, str]]] = {
        "invalid": (400, "invalid_request", "Invalid request"),
        "unauthorized": (401, "authentication_error", "Authentication failed, please check your API key"),
        "invalid_key": (401, "authentication_error", "Authentication failed, please check your API key"),
        "no_credits": (402, "insufficient_quota", "Insufficient quota"),
        "rate_limited": (429, "rate_limit_exceeded", "Rate limit exceeded, please retry after Retry-After"),
        "not_found": (404, "not_found_error", "Task not found"),
        "rejected": (422, "content_policy_violation", "Content violates the content policy"),
        "conflict": (409, "invalid_request", "Conflict"),
    }

    def validate(self, body: dict[str, Any]) -> Normalized | str:
        if body.get("model") != MODEL:
            return f"model must be {MODEL!r}"
        images = body.get("image_urls")
        if images is not None and (
            not isinstance(images, list) or len(images) > 1 or not all(isinstance(i, str) for i in images)
        ):
            return "image_urls must be a list of at most one image URL"
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict):
            return "metadata must be an object"
        first = images[0] if images else None
        last = metadata.get("last_frame_image")
        for image in (first, last):
            if isinstance(image, str) and image.startswith("data:"):
                return "base64 images are not supported; upload the image first and pass its URL"
            if image is not None and not _is_url(image):
                return "images must be http(s) URLs"
        prompt = body.get("prompt")
        problem = _check_prompt(prompt, required=first is None, camera=True)
        if problem:
            return problem
        problem, resolution = _check_duration_resolution(body, (6, 10), ("512P", "768P", "1080P"))
        if problem:
            return problem
        if last is not None and first is None:
            return "metadata.last_frame_image requires one image_urls entry (the first frame)"
        if last is not None and resolution == "512P":
            return "first-last-frame mode does not support 512P"
        problem = _check_bools(metadata, ("prompt_optimizer", "fast_pretreatment", "aigc_watermark"))
        if problem:
            return f"metadata.{problem}"
        if "callback_url" in metadata and not _is_url(metadata["callback_url"]):
            return "metadata.callback_url must be an http(s) URL"
        return Normalized(prompt=prompt if isinstance(prompt, str) else "", resolution=resolution)

    def server_error(self, status: int) -> dict[str, Any]:
        message = "Internal server error" if status == 500 else "Upstream service temporarily unavailable"
        return {"error": {"code": status, "message": message, "type": "internal_error"}}

    def submit_body(self, task: Task, drift: bool) -> dict[str, Any]:
        return {
            "id": task.task_id,
            "object": "generation.task",
            "model": MODEL,
            "status": "pending" if drift and task.alt else "queued",
            "progress": 0,
            "created_at": int(task.created_wall),
            "metadata": {},
        }

    def status_body(
        self,
        task: Task,
        state: TaskState,
        progress: int,
        video: tuple[str, int] | None,
        drift: bool,
        now: float,
    ) -> dict[str, Any]:
        alt = drift and task.alt
        if state == "queued":
            word = "submitted" if alt else "queued"
        elif state == "running":
            word = "in_progress"
        else:
            word = state
        body: dict[str, Any] = {
            "id": task.task_id,
            "object": "generation.task",
            "model": MODEL,
            "status": word,
            "progress": progress,
            "created_at": int(task.created_wall),
        }
        if video is not None:
            url, expires_at = video
            body["completed_at"] = int(task.created_wall + task.gen_time)
            body["expires_at"] = expires_at
            if alt:
                body["result"] = {"type": "video", "url": url}
            else:
                body["result"] = {"type": "video", "data": [{"url": url, "format": "mp4"}]}
        elif state == "failed":
            body["error"] = {"code": "generation_failed", "message": _CONTENT_POLICY}
        return body

    def upload_body(self, upload_id: str, url: str, filename: str, mime: str, size: int, now: float) -> Any:
        return {
            "success": True,
            "message": "",
            "data": {"id": upload_id, "url": url, "mime_type": mime, "size": size},
        }

    def upload_error(self, message: str, too_large: bool) -> tuple[int, dict[str, Any]]:
        return 400, {"success": False, "message": message}


class Minimax(Dialect):
    """Official MiniMax: ``base_resp`` status codes (HTTP 200 unless ``minimax_http_errors``), ``Trace-Id``."""

    name = "minimax"
    request_id_header = "Trace-Id"
    errors: ClassVar[dict[ErrorKind, tuple[int, Any, str]]] = {
        "invalid": (400, 2013, "invalid params"),
        "unauthorized": (401, 1004, "not authorized"),
        "invalid_key": (401, 2049, "invalid api key"),
        "no_credits": (402, 1008, "insufficient balance"),
        "rate_limited": (429, 1002, "rate limit"),
        "not_found": (404, 2013, "invalid params, task not found"),
        "rejected": (400, 1026, "input new_sensitive"),
        "conflict": (409, 2013, "invalid params"),
    }

    def __init__(self, http_errors: Callable[[], bool] = lambda: False) -> None:
        self.http_errors = http_errors  # read on every error: the config can change at runtime

    def error(self, kind: ErrorKind, message: str | None = None) -> tuple[int, dict[str, Any]]:
        status, code, default = self.errors[kind]
        if message and kind == "invalid":
            message = f"invalid params, {message}"
        body = {"base_resp": {"status_code": code, "status_msg": message or default}}
        return (status if self.http_errors() else 200), body

    def validate(self, body: dict[str, Any]) -> Normalized | str:
        if body.get("model") != MODEL:
            return f"model must be {MODEL!r}"
        first, last = body.get("first_frame_image"), body.get("last_frame_image")
        for name, image in (("first_frame_image", first), ("last_frame_image", last)):
            if image is not None and not (_is_url(image) or _is_data_image(image)):
                return f"{name} must be an http(s) URL or a data:image/...;base64 URL"
        prompt = body.get("prompt")
        problem = _check_prompt(prompt, required=first is None, camera=True)
        if problem:
            return problem
        problem, resolution = _check_duration_resolution(body, (6, 10), ("512P", "768P", "1080P"))
        if problem:
            return problem
        if last is not None and first is None:
            return "last_frame_image requires first_frame_image"
        if resolution == "512P" and first is None:
            return "512P is only available for image-to-video"
        if resolution == "512P" and last is not None:
            return "first-last-frame mode does not support 512P"
        problem = _check_bools(body, ("prompt_optimizer", "fast_pretreatment", "aigc_watermark"))
        if problem:
            return problem
        if "callback_url" in body and not _is_url(body["callback_url"]):
            return "callback_url must be an http(s) URL"
        return Normalized(prompt=prompt if isinstance(prompt, str) else "", resolution=resolution)

    def server_error(self, status: int) -> dict[str, Any]:
        return {"base_resp": {"status_code": 1024, "status_msg": "internal error"}}

    def submit_body(self, task: Task, drift: bool) -> dict[str, Any]:
        return {"task_id": task.task_id, "base_resp": _OK}

    def status_body(
        self,
        task: Task,
        state: TaskState,
        progress: int,
        video: tuple[str, int] | None,
        drift: bool,
        now: float,
    ) -> dict[str, Any]:
        if state == "queued":
            # Preparing for the first half of the queue time, then Queueing.
            word = "Preparing" if now - task.created < task.queue_time / 2 else "Queueing"
            return {"task_id": task.task_id, "status": word, "base_resp": _OK}
        if state == "running":
            return {"task_id": task.task_id, "status": "Processing", "base_resp": _OK}
        if state == "failed":
            return {
                "task_id": task.task_id,
                "status": "Fail",
                "base_resp": {"status_code": 1027, "status_msg": "output new_sensitive"},
            }
        assert task.file_id is not None
        width, height = _VIDEO_SIZE[task.resolution]
        return {
            "task_id": task.task_id,
            "status": "Success",
            "file_id": task.file_id if drift and task.alt else str(task.file_id),
            "video_width": width,
            "video_height": height,
            "base_resp": _OK,
        }

    def retrieve_body(self, task: Task, url: str) -> dict[str, Any]:
        return {
            "file": {
                "file_id": task.file_id,
                "bytes": task.video_bytes,
                "created_at": int(task.created_wall + task.gen_time),
                "filename": "output_aigc.mp4",
                "purpose": "video_generation",
                "download_url": url,
            },
            "base_resp": _OK,
        }


_OK = {"status_code": 0, "status_msg": "success"}
