"""The public value types: what a user asks for and what comes back.

A :class:`GenerationRequest` is checked for provider-independent rules as it is built; a provider codec adds its
own rules (:mod:`hailuo_async.providers`) before anything is sent. Submitting returns a :class:`Task`; the poller
turns each status answer into a :class:`TaskStatus`; a finished task becomes a :class:`Generation`.
"""

from __future__ import annotations

import enum
import os
import re
from typing import TYPE_CHECKING, Literal, TypedDict, cast

import msgspec

from ._exceptions import InvalidRequestError

__all__ = [
    "CAMERA_DIRECTIVES",
    "DEFAULT_MODEL",
    "MAX_PROMPT_LENGTH",
    "MODELS",
    "ClientStatistics",
    "EventKind",
    "Generation",
    "GenerationRequest",
    "ItemEvent",
    "Mode",
    "ProviderFacts",
    "Task",
    "TaskState",
    "TaskStatus",
]

MAX_PROMPT_LENGTH = 2000
"""Longest prompt any provider accepts, in characters."""

MODELS: tuple[str, ...] = ("MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast")
"""The models every provider serves on the same submit endpoint, canonically spelled (what each accepts there:
:mod:`hailuo_async.providers`, ``ModelRules``)."""

DEFAULT_MODEL = MODELS[0]
"""The model a request names unless it says otherwise."""

Mode = Literal["text-to-video", "image-to-video", "first-last-frame"]
"""A generation mode, implied by the frames a request gives."""

CAMERA_DIRECTIVES: tuple[str, ...] = (
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
)
"""The 15 camera directives Hailuo-02 reads inside ``[...]`` in a prompt (at most 3 per bracket)."""

_DIRECTIVES_BY_KEY = {" ".join(d.lower().split()): d for d in CAMERA_DIRECTIVES}
_MODELS_BY_KEY = {m.lower(): m for m in MODELS}
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_RESOLUTIONS = ("512p", "768p", "1080p")
_DURATIONS = (5, 6, 10)
_DATA_URI_HEAD = re.compile(r"^data:image/(jpeg|jpg|png|webp);base64,", re.IGNORECASE)
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")

FrameKind = Literal["url", "data_uri", "file"]

if TYPE_CHECKING:
    FrameSource = str | os.PathLike[str]
    """What a frame parameter accepts; always stored as ``str``."""
else:  # msgspec must see plain str so requests can be decoded (journal, batch files)
    FrameSource = str


def frame_kind(source: str) -> FrameKind:
    """Classify a frame source: an http(s) URL, a ``data:image/...;base64,`` URI or a local file path."""
    lowered = source[:11].lower()
    if lowered.startswith(("http://", "https://")):
        return "url"
    if lowered.startswith("data:"):
        return "data_uri"
    return "file"


def _check_prompt(prompt: str) -> None:
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise InvalidRequestError("prompt", prompt, f"at most {MAX_PROMPT_LENGTH} characters (got {len(prompt)})")
    if "\x00" in prompt:
        raise InvalidRequestError("prompt", prompt, "must not contain NUL characters")
    for match in _BRACKET.finditer(prompt):
        names = [" ".join(part.lower().split()) for part in match.group(1).split(",")]
        unknown = [n for n in names if n not in _DIRECTIVES_BY_KEY]
        if unknown:
            raise InvalidRequestError(
                "prompt",
                match.group(0),
                f"unknown camera directive {unknown[0]!r}; valid directives: "
                + ", ".join(f"[{d}]" for d in CAMERA_DIRECTIVES),
            )
        if len(names) > 3:
            raise InvalidRequestError(
                "prompt", match.group(0), f"at most 3 camera directives in one bracket (got {len(names)})"
            )


def canonical_model(value: object, *, parameter: str = "model") -> str:
    """``value`` as the canonical spelling of a model name (any case, surrounding spaces ignored); raises
    :class:`InvalidRequestError` naming ``parameter`` and the models there are."""
    model = _MODELS_BY_KEY.get(value.strip().lower()) if isinstance(value, str) else None
    if model is None:
        raise InvalidRequestError(parameter, value, "one of " + ", ".join(MODELS) + " (any case)")
    return model


def _check_frame(parameter: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(parameter, value, "an http(s) URL, a data:image/...;base64, URI or a local file path")
    if "\x00" in value:
        raise InvalidRequestError(parameter, value, "must not contain NUL characters")
    head = _DATA_URI_HEAD.match(value) if frame_kind(value) == "data_uri" else None
    if frame_kind(value) == "data_uri" and (head is None or not _BASE64.match(value[head.end() : head.end() + 4096])):
        raise InvalidRequestError(
            parameter, value[:40], "a data URI must look like data:image/jpeg|png|webp;base64,<data>"
        )
    return value


class _RequestBase(msgspec.Struct, frozen=True):
    prompt: str | None = None
    """What happens in the video; may hold camera directives such as ``[Push in]``."""


class GenerationRequest(_RequestBase, frozen=True, kw_only=True):
    """One video to generate. ``None`` for any option means the provider's default.

    Usage::

        GenerationRequest("A cat on the grass [Push in]", duration=10, resolution="768p")
        GenerationRequest("She turns around", first_frame="start.jpg", last_frame="end.png")
        GenerationRequest("A kite over dunes", model="minimax-hailuo-2.3", resolution="1080P")

    ``model`` accepts any case and is stored in its canonical spelling (``"MiniMax-Hailuo-2.3"``); ``resolution``
    accepts any case and is stored lower-case (``"768p"``). Frames accept a public http(s) URL,
    a ``data:image/...;base64,`` URI or a local file path (``str`` or :class:`pathlib.Path`, stored as ``str``).
    Rules that hold for every provider are checked here; each provider's own limits are checked before sending.
    """

    model: str = DEFAULT_MODEL
    """One of :data:`MODELS`: ``"MiniMax-Hailuo-02"`` (the default), ``"MiniMax-Hailuo-2.3"`` or
    ``"MiniMax-Hailuo-2.3-Fast"`` (image-to-video only); only Hailuo-02 takes 512p and a last frame."""
    duration: int | None = None
    """Length in seconds: 6 or 10 (Hailuo-02 on apimart: 5 or 10)."""
    resolution: str | None = None
    """``"512p"``, ``"768p"`` or ``"1080p"`` (1080p only at the short duration)."""
    first_frame: FrameSource | None = None
    """Image the video starts from (image-to-video)."""
    last_frame: FrameSource | None = None
    """Image the video ends on (first-last-frame; needs ``first_frame``)."""
    prompt_optimizer: bool | None = None
    """Let the provider rewrite the prompt (provider default: on)."""
    fast_pretreatment: bool | None = None
    """Shorter prompt optimisation, may slightly lower quality (provider default: off)."""
    watermark: bool | None = None
    """Add the provider's AI-generated watermark (provider default: off)."""

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "model", canonical_model(self.model))
        prompt = self.prompt
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InvalidRequestError("prompt", prompt, "a string")
            _check_prompt(prompt)
        duration = self.duration
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int) or duration not in _DURATIONS
        ):
            raise InvalidRequestError("duration", duration, "5 or 10 (apimart), 6 or 10 (toapis, minimax)")
        resolution = self.resolution
        if resolution is not None:
            normalized = resolution.strip().lower() if isinstance(resolution, str) else resolution
            if normalized not in _RESOLUTIONS:
                raise InvalidRequestError("resolution", resolution, "one of 512p, 768p, 1080p (any case)")
            msgspec.structs.force_setattr(self, "resolution", normalized)
        first = _check_frame("first_frame", self.first_frame)
        last = _check_frame("last_frame", self.last_frame)
        msgspec.structs.force_setattr(self, "first_frame", first)
        msgspec.structs.force_setattr(self, "last_frame", last)
        if last is not None and first is None:
            raise InvalidRequestError("last_frame", last, "a last frame needs a first_frame too")
        if first is None and (prompt is None or not prompt.strip()):
            raise InvalidRequestError("prompt", prompt, "a non-empty prompt is required for text-to-video")
        for name in ("prompt_optimizer", "fast_pretreatment", "watermark"):
            flag = getattr(self, name)
            if flag is not None and not isinstance(flag, bool):
                raise InvalidRequestError(name, flag, "True, False or None (provider default)")

    @property
    def mode(self) -> Mode:
        """Generation mode implied by the frames given."""
        if self.first_frame is None:
            return "text-to-video"
        return "image-to-video" if self.last_frame is None else "first-last-frame"


class TaskState(str, enum.Enum):
    """Where a task stands, in the words common to every provider."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Whether the task will not change any more."""
        return self in (TaskState.COMPLETED, TaskState.FAILED)


class ProviderFacts(TypedDict):
    """What a provider reports about a task beyond its video, by attribute name (``None`` where it says nothing).

    :class:`TaskStatus`, :class:`Generation` and the journal's items carry these as attributes of the same
    names; :meth:`TaskStatus.provider_facts` reads them as one value so they travel together."""

    cost: float | None
    credits_cost: float | None
    actual_time: float | None
    finished_at: float | None
    video_width: int | None
    video_height: int | None


class ProviderFactsMixin:
    """Mixin for the records that declare every :class:`ProviderFacts` attribute (TaskStatus, Generation and
    the journal's items)."""

    __slots__ = ()

    def provider_facts(self) -> ProviderFacts:
        """The provider's own facts about the task (cost, timing, video size), to carry into another record."""
        return cast(ProviderFacts, {name: getattr(self, name) for name in ProviderFacts.__annotations__})


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """A submitted generation: enough to wait for it again, even from another process."""

    provider: str
    """Provider name (``"apimart"``, ``"toapis"`` or ``"minimax"``)."""
    task_id: str
    """The provider's task id."""
    request: GenerationRequest
    """What was asked for."""
    submitted_at: float
    """Unix time the provider accepted the task."""
    idempotency_key: str | None = None
    """The idempotency key sent with the submit, if any."""


class TaskStatus(msgspec.Struct, ProviderFactsMixin, frozen=True, kw_only=True):
    """One status answer, decoded and mapped to the common vocabulary."""

    state: TaskState
    """Common state; an unknown provider word maps to RUNNING (``provider_status`` keeps it)."""
    provider_status: str = ""
    """The status word exactly as the provider sent it."""
    progress: int | None = None
    """0-100 where the provider reports it."""
    eta: float | None = None
    """Seconds until the provider expects the task to finish, where it says so."""
    video_url: str | None = None
    """Result URL once completed (MiniMax: after the files/retrieve step)."""
    expires_at: float | None = None
    """Unix time the result URL stops working, where known."""
    error: str | None = None
    """Failure reason when failed."""
    error_code: str | int | None = None
    """The provider's failure code, where it gives one."""
    file_id: str | None = None
    """MiniMax only: the file to retrieve for the video URL."""
    created_at: float | None = None
    """Unix time the provider created the task, where it says so."""
    cost: float | None = None
    """The answer's ``cost``: what apimart charged for the finished task, in US dollars."""
    credits_cost: float | None = None
    """The answer's ``credits_cost``: the same charge in apimart credits."""
    actual_time: float | None = None
    """The answer's ``actual_time``: seconds apimart spent on the finished task."""
    finished_at: float | None = None
    """The provider's own finish time, Unix seconds (toapis ``completed_at``, apimart ``completed``)."""
    video_width: int | None = None
    """The answer's ``video_width`` (MiniMax; its 0 while the task runs is read as ``None``)."""
    video_height: int | None = None
    """The answer's ``video_height`` (MiniMax; its 0 while the task runs is read as ``None``)."""


class Generation(msgspec.Struct, ProviderFactsMixin, frozen=True, kw_only=True):
    """A finished video."""

    provider: str
    """Provider name."""
    task_id: str
    """The provider's task id."""
    request: GenerationRequest
    """What was asked for."""
    video_url: str
    """Where the video can be downloaded (until ``expires_at``)."""
    expires_at: float | None
    """Unix time the URL stops working, where known."""
    submitted_at: float
    """Unix time the task was accepted."""
    completed_at: float
    """Unix time this client saw the result (the provider's own finish time is ``finished_at``)."""
    path: str | None = None
    """Local file the video was saved to, once downloaded."""
    cost: float | None = None
    """What the provider charged for the video, in US dollars (apimart reports it; ``None`` elsewhere)."""
    credits_cost: float | None = None
    """The same charge in apimart credits (10 credits per dollar)."""
    actual_time: float | None = None
    """Seconds the provider spent generating the video (apimart)."""
    finished_at: float | None = None
    """Unix time the provider says the task finished, by its own clock (toapis, apimart)."""
    video_width: int | None = None
    """Width of the video in pixels, where the provider says (MiniMax)."""
    video_height: int | None = None
    """Height of the video in pixels, where the provider says (MiniMax)."""
    estimated_cost: float | None = None
    """What the client's price table said the video would cost, in US dollars, for the request's effective model,
    resolution and duration (``None``: no price known); see :attr:`charged`."""

    @property
    def charged(self) -> float | None:
        """What the video cost, in US dollars: the provider's reported :attr:`cost` where it gives one (apimart),
        else the estimate (:attr:`charge_is_estimate` says which); ``None`` when neither is known."""
        return self.cost if self.cost is not None else self.estimated_cost

    @property
    def charge_is_estimate(self) -> bool:
        """Whether :attr:`charged` is the price table's estimate rather than a charge the provider reported."""
        return self.cost is None and self.estimated_cost is not None


EventKind = Literal["submitting", "submitted", "queued", "running", "completed", "failed", "downloaded"]


class ItemEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One step of one item of a batch (or of a single generation, ``index=None``), for progress displays."""

    index: int | None
    """Position of the item in the batch input."""
    kind: EventKind
    """What just happened."""
    task_id: str | None = None
    """The provider's task id, once known."""
    progress: int | None = None
    """0-100 where the provider reports it."""
    error: BaseException | None = None
    """The failure, for ``kind="failed"``."""
    generation: Generation | None = None
    """The result, for ``kind="completed"`` and ``"downloaded"``."""


class ClientStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of what a client has done so far (:meth:`HailuoClient.statistics`)."""

    submitting: int
    """Submits in flight now."""
    submitted: int
    """Tasks the provider accepted."""
    polling: int
    """Tasks being polled now."""
    completed: int
    """Tasks finished with a video."""
    failed: int
    """Items that ended with an error (of any kind)."""
    uncertain: int
    """Submits whose outcome is unknown (:class:`SubmissionUncertainError`)."""
    requests: int
    """HTTP requests sent to the API (all routes)."""
    status_requests: int
    """Status checks sent."""
    retries: int
    """Requests repeated after a transient failure."""
    rate_limited: int
    """429 (or MiniMax 1002) answers received."""
    uploads: int
    """Images uploaded."""
    downloads: int
    """Videos saved to disk."""
    rate_limit: float | None
    """Requests per second currently allowed (``None``: unlimited so far)."""
    spent: float = 0.0
    """US dollars committed by the tasks this client created (running, finished, or whose submit may have created
    one): the provider's reported charge where it gives one, else the price table's estimate; refunded failures
    count zero. Tasks without a known price are not in it (see ``unpriced``)."""
    spent_estimated: float = 0.0
    """The part of ``spent`` that is an estimate from the price table, not a charge the provider reported."""
    unpriced: int = 0
    """Tasks this client created whose cost is unknown (no reported charge, no price): ``spent`` leaves them out."""
    max_spend: float | None = None
    """The client's spending cap in US dollars (``None``: no cap)."""
