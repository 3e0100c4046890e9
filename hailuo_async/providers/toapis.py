"""toapis (``https://toapis.com``): wire structs and codec.

Submit ``POST /v1/videos/generations`` -> flat ``{id, object: "generation.task", ...}``; status
``GET /v1/videos/generations/{id}`` (flat) with the video at ``result.data[0].url``, else ``result.url``, else
``url``. Options ride in ``metadata``; frames must be public URLs (no base64). Every submit carries the client's
own id as ``client_business_id``, and ``GET /v1/videos/generations/{client_business_id}`` finds the task it
created, which settles a submit whose answer was lost. Webhook: ``metadata.callback_url`` gets signed POSTs
(``X-ToAPIs-Webhook-*`` headers, HMAC-SHA256) for ``generation.completed`` / ``generation.failed`` /
``endpoint.test``, without the video URL. See docs/providers.md, section B (B.6 for the webhook) and "Additions".
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from .._exceptions import DecodeError
from .._http import HttpRequest, HttpResponse, Route
from .._models import FrameKind, GenerationRequest, TaskState, TaskStatus
from ._base import (
    ACCEPT_JSON,
    Provider,
    WebhookEvent,
    as_progress,
    first_url,
    flags,
    map_status_word,
    multipart_image,
    path_segment,
)
from ._rules import RULES, ModelRules

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE",
    "TIMESTAMP_HEADER",
    "WEBHOOK_ID_HEADER",
    "Toapis",
    "sign_webhook",
]

WEBHOOK_ID_HEADER = "X-ToAPIs-Webhook-Id"
"""Header carrying a delivery's event id (signed; retries of a delivery repeat it)."""
TIMESTAMP_HEADER = "X-ToAPIs-Webhook-Timestamp"
"""Header carrying the Unix time (seconds) a delivery was signed."""
SIGNATURE_HEADER = "X-ToAPIs-Webhook-Signature"
"""Header carrying ``v1=<hex>``, or ``v1=<hex>,v1=<hex>`` for 24 h after the key's secret was rotated."""
SIGNATURE_TOLERANCE = 300.0
"""Largest gap in seconds, either way, between a delivery's timestamp and our clock (toapis publishes none;
five minutes is common practice, docs/providers.md, "Additions")."""

_EVENT_STATES: dict[str, TaskState] = {
    "generation.completed": TaskState.COMPLETED,
    "generation.failed": TaskState.FAILED,
}
_TEST_EVENT = "endpoint.test"
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def sign_webhook(secret: str, event_id: str, timestamp: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 toapis puts after ``v1=``: keyed with ``secret``, over
    ``event_id + "." + timestamp + "." + body`` (the raw body bytes)."""
    message = f"{event_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


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


class _WebhookData(msgspec.Struct):
    task_id: str | int | None = None
    task_type: str | None = None
    model: str | None = None
    status: str = ""


class _WebhookBody(msgspec.Struct):
    id: str | int | None = None
    type: str = ""
    data: _WebhookData | None = None


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
_decode_webhook = msgspec.json.Decoder(_WebhookBody, strict=False)


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
    callback_field: ClassVar[tuple[str, ...] | None] = ("metadata", "callback_url")

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

    def check_webhook(self, headers: Mapping[str, str], body: bytes, *, secret: str | None, now: float) -> bool:
        """Whether the delivery is signed with ``secret`` (docs/providers.md, B.6): its timestamp within
        :data:`SIGNATURE_TOLERANCE` of ``now`` and any of its ``v1=`` signatures equal to
        :func:`sign_webhook`'s, compared in constant time. Without a secret nothing is accepted."""
        if not secret:
            return False
        lowered = {name.lower(): value for name, value in headers.items()}
        event_id = lowered.get(WEBHOOK_ID_HEADER.lower(), "")
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "").strip()
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        if not event_id or not signature or _TIMESTAMP.fullmatch(timestamp) is None:
            return False
        sent = float(timestamp)
        if not (math.isfinite(now) and abs(now - sent) <= SIGNATURE_TOLERANCE):
            return False
        expected = sign_webhook(secret, event_id, timestamp, body).encode()
        matched = False
        for entry in signature.split(","):
            version, _, digest = entry.strip().partition("=")
            if version.strip().lower() == "v1":
                # Every entry is compared (no early exit) so the time taken says nothing about which one matched.
                matched |= hmac.compare_digest(expected, digest.strip().lower().encode("utf-8", "replace"))
        return matched

    def parse_webhook(self, body: bytes) -> WebhookEvent:
        """A signed delivery (check it with :meth:`check_webhook` first): ``endpoint.test`` is a ``"test"`` event;
        any other event is a ``"status"`` event whose state comes from ``data.status``, else from the event type.
        It carries no video URL or failure detail: a status check follows a terminal one."""
        answer = self.decode(_decode_webhook, HttpResponse(status=200, headers={}, body=body))
        event_type = answer.type.strip().lower()
        event_id = None if answer.id is None or str(answer.id) == "" else str(answer.id)
        if event_type == _TEST_EVENT:
            return WebhookEvent(kind="test", event_id=event_id)
        data = answer.data
        if data is None or data.task_id is None or str(data.task_id) == "":
            raise DecodeError("toapis: webhook body carries no data.task_id", provider=self.name)
        word = data.status.strip()
        state = (map_status_word(word) if word else None) or _EVENT_STATES.get(event_type) or TaskState.RUNNING
        status = TaskStatus(
            state=state,
            provider_status=word or answer.type,
            error="task failed" if state is TaskState.FAILED else None,
        )
        return WebhookEvent(kind="status", task_id=str(data.task_id), status=status, event_id=event_id)

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
