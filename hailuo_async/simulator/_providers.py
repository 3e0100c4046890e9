"""The three providers' dialects: request validation, response bodies and error bodies.

Written from the providers' documented wire facts (``docs/providers.md``, sections A to C) alone, independently of
the client code, so that the simulator is an oracle for it.
Nothing here does I/O: :mod:`._api` decides *what* happens and asks the dialect *how* its provider says it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import msgspec

from ._config import DriftShape
from ._state import LiveTask, ProviderName, TaskPhase

__all__ = [
    "MODEL",
    "MODELS",
    "Apimart",
    "Dialect",
    "ErrorKind",
    "Minimax",
    "ModelSpec",
    "Normalized",
    "Toapis",
    "camera_error",
]

MODEL = "MiniMax-Hailuo-02"
MAX_PROMPT_CHARS = 2000
DEFAULT_RESOLUTION = "768P"


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a model accepts on MiniMax (the dialects adapt spellings and, for apimart, durations).

    ``durations`` is (default, long); the last (highest) resolution is only allowed at the default duration.
    """

    name: str
    durations: tuple[int, int] = (6, 10)
    resolutions: tuple[str, ...] = ("512P", "768P", "1080P")
    text_to_video: bool = True
    last_frame: bool = True


# Written from docs/providers.md, "Newer models per provider", not from the client's own table
# (hailuo_async/providers/_rules.py): tests/simulator/test_models.py checks that both accept the same requests.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(name=MODEL),
        # MiniMax: 768P (default) or 1080P, 6 or 10 s, 1080P at 6 s only; text and image-to-video; only Hailuo-02
        # does a last frame. apimart's and toapis' 2.3 pages say the same.
        ModelSpec(name="MiniMax-Hailuo-2.3", resolutions=("768P", "1080P"), last_frame=False),
        # toapis' 2.3 page and MiniMax's model list: image-to-video only (a first frame is required); otherwise
        # as 2.3. apimart has no page for it: the official rules stand in.
        ModelSpec(name="MiniMax-Hailuo-2.3-Fast", resolutions=("768P", "1080P"), text_to_video=False, last_frame=False),
    )
}

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
    "in_progress",
    "no_resource",
    "bad_method",
]

_CONTENT_POLICY = "Generation failed: Content violates the content policy"
_VIDEO_SIZE = {"512P": (910, 512), "768P": (1366, 768), "1080P": (1920, 1080)}


class Normalized(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a valid submit body the simulator needs."""

    model: str
    prompt: str
    resolution: str  # upper-case P, e.g. "768P"
    client_business_id: str | None = None  # toapis only


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


def _model_spec(body: dict[str, Any]) -> ModelSpec | str:
    model = body.get("model")
    spec = MODELS.get(model) if isinstance(model, str) else None
    return spec if spec is not None else f"model must be one of {', '.join(map(repr, MODELS))}, got {model!r}"


def _check_video(
    body: dict[str, Any],
    spec: ModelSpec,
    frames: tuple[object, object],
    *,
    durations: tuple[int, int] | None = None,
    lower: bool = False,
    names: tuple[str, str] = ("first_frame_image", "last_frame_image"),
) -> tuple[str | None, str]:
    """Check duration, resolution and the (first, last) frames against ``spec``; ``names`` are the provider's words
    for the frames. Returns (problem or None, upper-case resolution)."""
    durations = durations or spec.durations
    resolutions = tuple(r.lower() for r in spec.resolutions) if lower else spec.resolutions
    duration = body.get("duration", durations[0])
    resolution = body.get("resolution", DEFAULT_RESOLUTION.lower() if lower else DEFAULT_RESOLUTION)
    first, last = frames
    if type(duration) is not int or duration not in durations:
        return f"duration must be {durations[0]} or {durations[1]}, got {duration!r}", ""
    if resolution not in resolutions:
        return f"resolution must be one of {', '.join(resolutions)} for {spec.name}, got {resolution!r}", ""
    if resolution == resolutions[-1] and duration != durations[0]:
        return f"{resolution} supports only duration {durations[0]}", ""
    if first is None and not spec.text_to_video:
        return f"{spec.name} is image-to-video only: {names[0]} is required", ""
    if last is not None and not spec.last_frame:
        return f"{spec.name} does not support {names[1]} (first-last-frame is {MODEL} only)", ""
    if last is not None and first is None:
        return f"{names[1]} requires {names[0]}", ""
    return None, str(resolution).upper()


def _check_inline_frames(first: object, last: object) -> str | None:
    """apimart and MiniMax take each frame as an http(s) URL or a base64 data URL."""
    for name, image in (("first_frame_image", first), ("last_frame_image", last)):
        if image is not None and not (_is_url(image) or _is_data_image(image)):
            return f"{name} must be an http(s) URL or a data:image/...;base64 URL"
    return None


def _check_bools(body: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in body and not isinstance(body[name], bool):
            return f"{name} must be a boolean"
    return None


class Dialect:
    """How one provider phrases things. Subclasses fill in the tables and body builders.

    ``drift`` arguments are the drift shapes this task answers in (empty: the main shapes).
    """

    name: ClassVar[ProviderName]
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

    def submit_body(self, task: LiveTask, drift: frozenset[DriftShape]) -> dict[str, Any]:
        raise NotImplementedError

    def status_body(
        self,
        task: LiveTask,
        state: TaskPhase,
        progress: int,
        video: tuple[str, int] | None,
        drift: frozenset[DriftShape],
        now: float,
    ) -> dict[str, Any]:
        """``video`` is (signed URL, expiry) for a completed task; ``now`` is the monotonic clock."""
        raise NotImplementedError

    def upload_body(self, upload_id: str, url: str, filename: str, mime: str, size: int, now: float) -> Any:
        raise NotImplementedError

    def upload_error(self, message: str, too_large: bool) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


APIMART_RESPONSE_VERSION = "2026-07-27"
"""The ``X-APIMart-Response-Version`` apimart's own client sends; with it, submits answer the newer shape."""

# apimart documents 5 | 10 s for Hailuo-02 (and 6 | 10 for 2.3). Its 2.3-Fast durations are unknown, so they are
# MiniMax's (6 | 10), as for 2.3.
_APIMART_DURATIONS: dict[str, tuple[int, int]] = {MODEL: (5, 10)}
_APIMART_DOCS = "https://docs.apimart.ai/en/api-reference/videos/{slug}/generation"
_APIMART_STRING_CODES: dict[ErrorKind, str] = {
    "conflict": "idempotency_key_reused",
    "in_progress": "idempotency_in_progress",
}


class Apimart(Dialect):
    """apimart: ``{"code":200,"data":...}`` envelopes, lower-case ``p`` resolutions, Hailuo-02 durations 5 | 10.

    The discovery bodies (``/v1/models``, ``/v1/model-docs``, ``/v1/model-schema``) follow the fields apimart's own
    client reads (``data[].id``; ``object: "model.documentation"``, ``markdown``, ...; ``model``, ``operation``,
    ``input_schema``). Everything else in them (the list entries' other fields, the Markdown text, the JSON Schema)
    is the simulator's own: no published answer shows it.
    """

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
        "conflict": (409, "idempotency_error", "Idempotency-Key was already used with a different body"),
        "in_progress": (409, "idempotency_error", "A request with this Idempotency-Key is still being processed"),
        "no_resource": (404, "not_found_error", "Not found"),
        "bad_method": (405, "invalid_request_error", "Method not allowed"),
    }
    _server_errors: ClassVar[dict[int, tuple[str, str]]] = {
        500: ("server_error", "Internal server error, please retry later"),
        502: ("bad_gateway", "Gateway error, server temporarily unavailable"),
        503: ("service_unavailable", "Service temporarily unavailable"),
    }

    def error(self, kind: ErrorKind, message: str | None = None) -> tuple[int, dict[str, Any]]:
        status, body = super().error(kind, message)
        if kind in _APIMART_STRING_CODES:  # idempotency errors name themselves in ``code``, as seen in the wild
            body["error"]["code"] = _APIMART_STRING_CODES[kind]
        return status, body

    @staticmethod
    def durations(spec: ModelSpec) -> tuple[int, int]:
        return _APIMART_DURATIONS.get(spec.name, spec.durations)

    def validate(self, body: dict[str, Any]) -> Normalized | str:
        spec = _model_spec(body)
        if isinstance(spec, str):
            return spec
        prompt = body.get("prompt")
        # apimart documents no camera-directive rules, so any [...] text is accepted.
        problem = _check_prompt(prompt, required=True, camera=False)
        if problem:
            return problem
        frames = body.get("first_frame_image"), body.get("last_frame_image")
        problem = _check_inline_frames(*frames)
        if problem:
            return problem
        problem, resolution = _check_video(body, spec, frames, durations=self.durations(spec), lower=True)
        if problem:
            return problem
        problem = _check_bools(body, ("prompt_optimizer", "fast_pretreatment", "watermark"))
        if problem:
            return problem
        assert isinstance(prompt, str)
        return Normalized(model=spec.name, prompt=prompt, resolution=resolution)

    def server_error(self, status: int) -> dict[str, Any]:
        kind_type, message = self._server_errors[status]
        return {"error": {"code": status, "message": message, "type": kind_type}}

    def submit_body(self, task: LiveTask, drift: frozenset[DriftShape]) -> dict[str, Any]:
        return {"code": 200, "data": [{"status": "submitted", "task_id": task.task_id}]}

    @staticmethod
    def versioned_submit_body(task: LiveTask) -> dict[str, Any]:
        """The submit answer under ``X-APIMart-Response-Version: 2026-07-27``, sent with HTTP 202 (the caller adds
        ``request_id``, as to every answer in that version)."""
        return {"code": 202, "data": {"id": task.task_id, "status": "pending"}}

    def status_body(
        self,
        task: LiveTask,
        state: TaskPhase,
        progress: int,
        video: tuple[str, int] | None,
        drift: frozenset[DriftShape],
        now: float,
    ) -> dict[str, Any]:
        if state == "queued":
            word = "submitted" if "apimart_submitted" in drift else "pending"
        elif state == "running":
            word = "in_progress" if "apimart_in_progress" in drift else "processing"
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
            urls = url if "apimart_url_string" in drift else [url]
            data["result"] = {"videos": [{"url": urls, "expires_at": expires_at}]}
        elif state == "failed":
            data["error"] = {"code": 422, "message": _CONTENT_POLICY, "type": "content_policy_violation"}
        return {"code": 200, "data": data}

    def upload_body(self, upload_id: str, url: str, filename: str, mime: str, size: int, now: float) -> Any:
        return {"url": url, "filename": filename, "content_type": mime, "bytes": size, "created_at": int(now)}

    def upload_error(self, message: str, too_large: bool) -> tuple[int, dict[str, Any]]:
        status = 413 if too_large else 400
        return status, {"error": {"code": status, "message": message, "type": "invalid_request_error"}}

    # -- discovery -------------------------------------------------------------------------------------------

    @staticmethod
    def models_body(now: float) -> dict[str, Any]:
        """``GET /v1/models``: an OpenAI-style list of the models the simulator serves."""
        entries = [{"id": name, "object": "model", "created": int(now), "owned_by": "minimax"} for name in MODELS]
        return {"object": "list", "data": entries}

    def input_schema(self, spec: ModelSpec) -> dict[str, Any]:
        """A JSON Schema of the submit body's fields (``model`` excluded) for ``spec`` on apimart."""
        durations = self.durations(spec)
        resolutions = [r.lower() for r in spec.resolutions]
        image = {"type": "string", "description": "public http(s) URL (upload first) or data:image/...;base64"}
        properties: dict[str, Any] = {
            "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
            "duration": {"type": "integer", "enum": list(durations), "default": durations[0]},
            "resolution": {"type": "string", "enum": resolutions, "default": DEFAULT_RESOLUTION.lower()},
            "first_frame_image": image,
            "prompt_optimizer": {"type": "boolean", "default": True},
            "fast_pretreatment": {"type": "boolean", "default": False},
            "watermark": {"type": "boolean", "default": False},
        }
        if spec.last_frame:
            properties["last_frame_image"] = {**image, "description": "ending frame; needs first_frame_image"}
        required = ["prompt"] if spec.text_to_video else ["prompt", "first_frame_image"]
        # The highest resolution is only allowed at the default duration.
        only_short = {
            "if": {"properties": {"resolution": {"const": resolutions[-1]}}, "required": ["resolution"]},
            "then": {"properties": {"duration": {"const": durations[0]}}},
        }
        return {"type": "object", "properties": properties, "required": required, "allOf": [only_short]}

    def schema_body(self, spec: ModelSpec) -> dict[str, Any]:
        """``GET /v1/model-schema``: the operation and input schema of one model."""
        return {"model": spec.name, "operation": "video_generation", "input_schema": self.input_schema(spec)}

    def docs_body(self, spec: ModelSpec, now: float) -> dict[str, Any]:
        """``GET /v1/model-docs``: one model's documentation as Markdown, with the simulator's own wording."""
        schema = self.input_schema(spec)
        fields = schema["properties"]
        modes = "text-to-video and image-to-video" if spec.text_to_video else "image-to-video only"
        if spec.last_frame:
            modes += ", and first-last-frame"
        lines = [
            f"# {spec.name}",
            "",
            f'`POST /v1/videos/generations` with `model: "{spec.name}"`; poll `GET /v1/tasks/{{task_id}}`.',
            f"Modes: {modes}.",
            "",
            "| field | type | required | values |",
            "|---|---|---|---|",
        ]
        for field, rule in fields.items():
            values = ", ".join(map(str, rule.get("enum", []))) or rule.get("description", "")
            if "maxLength" in rule:
                values = f"at most {rule['maxLength']} characters"
            if "default" in rule:
                values = f"{values} (default {str(rule['default']).lower()})".strip()
            required = "yes" if field in schema["required"] else "no"
            lines.append(f"| `{field}` | {rule['type']} | {required} | {values} |")
        short = self.durations(spec)[0]
        lines += ["", f"`{spec.resolutions[-1].lower()}` is only available with `duration: {short}`."]
        slug = spec.name.lower().replace("minimax-hailuo-02", "minimax-hailuo")
        url = _APIMART_DOCS.format(slug=slug)
        return {
            "object": "model.documentation",
            "model": spec.name,
            "doc_url": url,
            "markdown_url": url + ".md",
            "markdown": "\n".join(lines) + "\n",
            "fetched_at": int(now),
            "cache_ttl_seconds": 3600,
            "stale": False,
        }


class Toapis(Dialect):
    """toapis: flat ``generation.task`` objects, upper-case ``P``, durations 6 | 10, ``metadata`` options.

    A submit may carry ``client_business_id`` (top level or in ``metadata``); ``GET /v1/videos/generations/{id}``
    then also answers for that id, for the API key that submitted it.
    """

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
        "no_resource": (404, "not_found_error", "Not found"),
        "bad_method": (405, "invalid_request", "Method not allowed"),
    }

    def validate(self, body: dict[str, Any]) -> Normalized | str:
        spec = _model_spec(body)
        if isinstance(spec, str):
            return spec
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
        client_id = _client_business_id(body.get("client_business_id"), metadata.get("client_business_id"))
        if isinstance(client_id, _Problem):
            return client_id.message
        prompt = body.get("prompt")
        problem, resolution = _check_video(
            body, spec, (first, last), names=("one image_urls entry (the first frame)", "metadata.last_frame_image")
        )
        if problem:
            return problem
        problem = _check_prompt(prompt, required=first is None, camera=True)
        if problem:
            return problem
        if last is not None and resolution == "512P":
            return "first-last-frame mode does not support 512P"
        problem = _check_bools(metadata, ("prompt_optimizer", "fast_pretreatment", "aigc_watermark"))
        if problem:
            return f"metadata.{problem}"
        if "callback_url" in metadata and not _is_url(metadata["callback_url"]):
            return "metadata.callback_url must be an http(s) URL"
        return Normalized(
            model=spec.name,
            prompt=prompt if isinstance(prompt, str) else "",
            resolution=resolution,
            client_business_id=client_id,
        )

    def server_error(self, status: int) -> dict[str, Any]:
        message = "Internal server error" if status == 500 else "Upstream service temporarily unavailable"
        return {"error": {"code": status, "message": message, "type": "internal_error"}}

    def submit_body(self, task: LiveTask, drift: frozenset[DriftShape]) -> dict[str, Any]:
        return {
            "id": task.task_id,
            "object": "generation.task",
            "model": task.model,
            "status": "pending" if "toapis_pending" in drift else "queued",
            "progress": 0,
            "created_at": int(task.created_wall),
            "metadata": {},
        }

    def status_body(
        self,
        task: LiveTask,
        state: TaskPhase,
        progress: int,
        video: tuple[str, int] | None,
        drift: frozenset[DriftShape],
        now: float,
    ) -> dict[str, Any]:
        if state == "queued":
            word = "submitted" if "toapis_submitted" in drift else "queued"
        elif state == "running":
            word = "in_progress"
        else:
            word = state
        body: dict[str, Any] = {
            "id": task.task_id,
            "object": "generation.task",
            "model": task.model,
            "status": word,
            "progress": progress,
            "created_at": int(task.created_wall),
        }
        if video is not None:
            url, expires_at = video
            body["completed_at"] = int(task.created_wall + task.gen_time)
            body["expires_at"] = expires_at
            if "toapis_result_url" in drift:
                body["result"] = {"url": url}
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


class _Problem(msgspec.Struct, frozen=True):
    message: str


def _client_business_id(top: object, nested: object) -> str | _Problem | None:
    """toapis' ``client_business_id``, given at the top level or in ``metadata`` (None: not given)."""
    given = [value for value in (top, nested) if value is not None]
    if not all(isinstance(value, str) and value.strip() for value in given):
        return _Problem("client_business_id must be a non-empty string")
    if len(set(given)) > 1:
        return _Problem("client_business_id differs between the top level and metadata")
    return str(given[0]) if given else None


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
        # MiniMax documents no answer for a bad path: its usual error shape (2013, HTTP 200 by default) stands in.
        "no_resource": (404, 2013, "invalid params, unknown path"),
        "bad_method": (405, 2013, "invalid params, method not allowed"),
    }

    def __init__(self, http_errors: Callable[[], bool] = lambda: False) -> None:
        self.http_errors = http_errors  # read on every error: the config can change at runtime

    def error(self, kind: ErrorKind, message: str | None = None) -> tuple[int, dict[str, Any]]:
        status, code, default = self.errors[kind]
        if message and code == 2013:
            message = f"invalid params, {message}"
        body = {"base_resp": {"status_code": code, "status_msg": message or default}}
        return (status if self.http_errors() else 200), body

    def validate(self, body: dict[str, Any]) -> Normalized | str:
        spec = _model_spec(body)
        if isinstance(spec, str):
            return spec
        frames = first, last = body.get("first_frame_image"), body.get("last_frame_image")
        problem = _check_inline_frames(first, last)
        if problem:
            return problem
        problem, resolution = _check_video(body, spec, frames)
        if problem:
            return problem
        prompt = body.get("prompt")
        problem = _check_prompt(prompt, required=first is None, camera=True)
        if problem:
            return problem
        if resolution == "512P" and first is None:
            return "512P is only available for image-to-video"
        if resolution == "512P" and last is not None:
            return "first-last-frame mode does not support 512P"
        problem = _check_bools(body, ("prompt_optimizer", "fast_pretreatment", "aigc_watermark"))
        if problem:
            return problem
        if "callback_url" in body and not _is_url(body["callback_url"]):
            return "callback_url must be an http(s) URL"
        return Normalized(model=spec.name, prompt=prompt if isinstance(prompt, str) else "", resolution=resolution)

    def server_error(self, status: int) -> dict[str, Any]:
        return {"base_resp": {"status_code": 1024, "status_msg": "internal error"}}

    def submit_body(self, task: LiveTask, drift: frozenset[DriftShape]) -> dict[str, Any]:
        return {"task_id": task.task_id, "base_resp": _OK}

    def status_body(
        self,
        task: LiveTask,
        state: TaskPhase,
        progress: int,
        video: tuple[str, int] | None,
        drift: frozenset[DriftShape],
        now: float,
    ) -> dict[str, Any]:
        if state == "failed":
            return {
                "task_id": task.task_id,
                "status": "Fail",
                "base_resp": {"status_code": 1027, "status_msg": "output new_sensitive"},
            }
        # Captured in-progress answers carry an empty file_id and a 0 x 0 size; finished ones the real values.
        file_id: int | str = ""
        width = height = 0
        if state == "completed":
            assert task.file_id is not None
            word = "Success"
            file_id = task.file_id if "minimax_numeric_file_id" in drift else str(task.file_id)
            width, height = _VIDEO_SIZE[task.resolution]
        elif state == "queued":
            # Preparing for the first half of the queue time, then Queueing.
            word = "Preparing" if now - task.created < task.queue_time / 2 else "Queueing"
        else:
            word = "Processing"
        return {
            "task_id": task.task_id,
            "status": word,
            "file_id": file_id,
            "video_width": width,
            "video_height": height,
            "base_resp": _OK,
        }

    def retrieve_body(self, task: LiveTask, url: str) -> dict[str, Any]:
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
