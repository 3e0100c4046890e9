"""Simulator configuration: frozen, JSON-loadable msgspec structs.

Every field has a default, so ``SimulatorConfig()`` is a fault-free simulator whose tasks finish in about three
seconds. Configs are immutable; a running :class:`~hailuo_async.simulator.Simulator` switches to a new one with
``update_config(**changes)`` or ``configure(config)``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import msgspec

__all__ = [
    "APIMART_URL_TTL",
    "DRIFT_SHAPES",
    "MINIMAX_URL_TTL",
    "TOAPIS_URL_TTL",
    "DriftShape",
    "FaultRoute",
    "Faults",
    "GenerationTimes",
    "RateLimit",
    "SimulatorConfig",
]

FaultRoute = Literal["submit", "status", "retrieve", "upload", "discovery", "cdn"]

# How long each provider's result (video) and upload URLs stay valid, in seconds.
APIMART_URL_TTL = 72 * 3600.0  # apimart's own client (MEDIA_URL_TTL_HOURS = 72) and its upload page: 72 hours
TOAPIS_URL_TTL = 24 * 3600.0  # toapis: "Generated video URLs are valid for 24 hours" (upload lifetime undocumented)
MINIMAX_URL_TTL = 9 * 3600.0  # MiniMax download_url: undocumented; its other file URLs are documented at 9 hours
_URL_TTLS = {"apimart": APIMART_URL_TTL, "toapis": TOAPIS_URL_TTL, "minimax": MINIMAX_URL_TTL}

DriftShape = Literal[
    "apimart_submitted",
    "apimart_in_progress",
    "apimart_url_string",
    "toapis_pending",
    "toapis_submitted",
    "toapis_result_url",
    "minimax_numeric_file_id",
]

# Sources, by section of the project's provider wire reference: apimart A.3 ("Status-word drift", the `url`
# variant), toapis B.3 (the status table, the `pending` submit, the `result.url` variant), MiniMax C.4 (numeric
# file ids) and its "Where the video URL sits" table.
DRIFT_SHAPES: dict[DriftShape, str] = {
    "apimart_submitted": "queued tasks say `submitted`, not `pending` (some apimart model pages)",
    "apimart_in_progress": "running tasks say `in_progress`, not `processing` (apimart's gpt-image-2-official page)",
    "apimart_url_string": "`result.videos[0].url` is a string, not an array (an old apimart sora page)",
    "toapis_pending": "the submit answer says `pending`, not `queued` (a third-party test of toapis)",
    "toapis_submitted": "queued tasks say `submitted`, not `queued` (toapis' status table lists it)",
    "toapis_result_url": "the video is at `result.url`, not `result.data[0].url` (toapis' own code samples)",
    "minimax_numeric_file_id": "the query's `file_id` is a JSON number, not a string (MiniMax file ids are int64)",
}
"""The drift shapes ``SimulatorConfig.drift`` can switch on: what each changes and where it was seen. Shapes no
document or public client shows are not simulated."""

_API_ROUTES: frozenset[FaultRoute] = frozenset({"submit", "status", "retrieve", "upload"})
_MIN_VIDEO_BYTES = 128


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class GenerationTimes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Distribution of a task's total generation time (queue + run), in seconds.

    - ``"lognormal"``: ``median * exp(N(0, sigma))``;
    - ``"uniform"``: uniform in ``[low, high]``;
    - ``"fixed"``: always ``median``.

    The drawn value is clamped to ``[min, max]``. A ``{{sim:time=S}}`` prompt marker bypasses the distribution.
    """

    kind: Literal["lognormal", "uniform", "fixed"] = "lognormal"
    median: float = 3.0
    sigma: float = 0.35
    low: float = 1.0
    high: float = 5.0
    min: float = 0.5
    max: float = 10.0

    def __post_init__(self) -> None:
        for name in ("median", "sigma", "low", "high", "min", "max"):
            _check_non_negative(name, getattr(self, name))
        if self.low > self.high:
            raise ValueError("generation.low must be <= generation.high")
        if self.min > self.max:
            raise ValueError("generation.min must be <= generation.max")


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Token bucket per (provider, API key): ``rate`` requests per second, up to ``burst`` at once."""

    rate: float = 5.0
    burst: float = 5.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate_limit.rate must be > 0, got {self.rate!r}")
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError(f"rate_limit.burst must be >= 1, got {self.burst!r}")


class Faults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Injected faults. Probabilities are per request, in ``[0, 1]``; all are off by default.

    ``error_5xx``, ``drop``, ``malformed`` and ``latency`` apply to the route kinds listed in ``routes`` (by default
    submit, status, retrieve and upload; add ``"discovery"`` for apimart's model routes and ``"cdn"`` to hit the CDN
    too; ``malformed`` never applies to the CDN). ``submit_then_drop`` applies to submits only and ``cdn_truncate``
    to CDN video downloads only, whatever ``routes`` says.

    - ``error_5xx``: answer 500, 502 or 503 with the provider's error body, before doing anything else.
    - ``drop``: close the connection without answering, before doing anything else.
    - ``submit_then_drop``: create the task (charging a credit), then close the connection without answering.
    - ``malformed``: answer 200 with a truncated JSON body; a submit creates the task first.
    - ``latency``: seconds added to every request, either fixed or uniform in ``[low, high]``.
    - ``cdn_truncate``: send the full ``Content-Length`` but close the connection half-way through the body.
    """

    error_5xx: float = 0.0
    drop: float = 0.0
    submit_then_drop: float = 0.0
    malformed: float = 0.0
    latency: float | tuple[float, float] = 0.0
    cdn_truncate: float = 0.0
    routes: frozenset[FaultRoute] = _API_ROUTES

    def __post_init__(self) -> None:
        for name in ("error_5xx", "drop", "submit_then_drop", "malformed", "cdn_truncate"):
            _check_probability(name, getattr(self, name))
        bounds = self.latency if isinstance(self.latency, tuple) else (self.latency, self.latency)
        for value in bounds:
            _check_non_negative("latency", value)
        if bounds[0] > bounds[1]:
            raise ValueError("latency (low, high) needs low <= high")


class SimulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the simulator does, as one immutable, JSON-loadable value.

    - ``host``, ``port``, ``cdn_port``: where to bind (ports 0 pick free ones). Read at start only.
    - ``seed``: seeds every random draw (generation times, failures, drift, faults) for reproducible runs.
    - ``generation``: the distribution of a task's total time; ``queue_fraction`` of it is spent queued.
    - ``estimated_time_error``: relative noise of apimart's ``estimated_time`` (whole seconds, >= 1).
    - ``url_ttl``: seconds a signed video URL stays valid (each status poll signs a fresh one); None: each provider's
      documented lifetime (:data:`APIMART_URL_TTL` 72 h, :data:`TOAPIS_URL_TTL` 24 h, :data:`MINIMAX_URL_TTL` 9 h).
    - ``upload_ttl``: seconds an uploaded image's URL stays valid (fixed at upload); None: the provider's lifetime.
    - ``submit_delay``: seconds a submit spends being processed before its task exists. Meanwhile apimart answers
      another submit with the same ``Idempotency-Key`` 409 ``idempotency_in_progress`` (``Retry-After: 1``).
    - ``failure_rate``: probability that a task fails with a content-policy error.
    - ``video_bytes``: size of each MP4 (fixed per task when it is created).
    - ``faults``: see :class:`Faults`. ``rate_limit``: a token bucket per provider and API key (None: no limit).
    - ``minimax_http_errors``: MiniMax errors use real HTTP statuses (401/402/404/429/400) instead of 200.
    - ``keys``: the accepted API keys (None: any non-empty bearer token).
    - ``credits``: tasks each API key may create (None: unlimited).
    - ``idempotency``: apimart honours ``Idempotency-Key``.
    - ``drift``: ``True`` (every shape), ``False``, or a set of :data:`DRIFT_SHAPES` names (each one's entry says what
      it changes and its source); about half of the tasks (a seeded per-task draw) answer in every enabled shape.

    Every field except ``host``/``port``/``cdn_port``/``seed`` takes effect on the next request after a change.
    """

    host: str = "127.0.0.1"
    port: int = 0
    cdn_port: int = 0
    seed: int = 0
    generation: GenerationTimes = GenerationTimes()
    queue_fraction: float = 0.15
    estimated_time_error: float = 0.3
    url_ttl: float | None = None
    upload_ttl: float | None = None
    submit_delay: float = 0.0
    failure_rate: float = 0.0
    video_bytes: int = 65536
    faults: Faults = Faults()
    rate_limit: RateLimit | None = None
    minimax_http_errors: bool = False
    keys: tuple[str, ...] | None = None
    credits: int | None = None
    idempotency: bool = True
    drift: bool | frozenset[DriftShape] = False

    def __post_init__(self) -> None:
        _check_probability("queue_fraction", self.queue_fraction)
        _check_probability("failure_rate", self.failure_rate)
        _check_non_negative("estimated_time_error", self.estimated_time_error)
        _check_non_negative("submit_delay", self.submit_delay)
        for name in ("url_ttl", "upload_ttl"):
            ttl = getattr(self, name)
            if ttl is not None and not (ttl > 0 and math.isfinite(ttl)):
                raise ValueError(f"{name} must be > 0 (or null for the provider's own), got {ttl!r}")
        if not isinstance(self.drift, bool):
            unknown = sorted(set(self.drift) - DRIFT_SHAPES.keys())
            if unknown:
                raise ValueError(f"unknown drift shape(s) {unknown}; known: {sorted(DRIFT_SHAPES)}")
        if self.video_bytes < _MIN_VIDEO_BYTES:
            raise ValueError(f"video_bytes must be >= {_MIN_VIDEO_BYTES}, got {self.video_bytes!r}")
        if self.credits is not None and self.credits < 0:
            raise ValueError(f"credits must be >= 0, got {self.credits!r}")
        for port in (self.port, self.cdn_port):
            if not 0 <= port <= 65535:
                raise ValueError(f"invalid port {port!r}")

    def video_url_ttl(self, provider: str) -> float:
        """Seconds a video URL of ``provider`` stays valid: ``url_ttl``, else the provider's documented lifetime."""
        return self.url_ttl if self.url_ttl is not None else _URL_TTLS[provider]

    def upload_url_ttl(self, provider: str) -> float:
        """Seconds an uploaded image URL of ``provider`` stays valid: ``upload_ttl``, else the provider's."""
        return self.upload_ttl if self.upload_ttl is not None else _URL_TTLS[provider]

    def drift_shapes(self) -> frozenset[DriftShape]:
        """The enabled drift shapes (``drift=True`` enables them all)."""
        if self.drift is True:
            return _ALL_DRIFT
        return self.drift or frozenset()

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any]) -> SimulatorConfig:
        """Build a config from JSON text or an already decoded mapping; unknown keys are rejected."""
        if isinstance(data, dict):
            return msgspec.convert(data, cls)
        return msgspec.json.decode(data, type=cls)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SimulatorConfig:
        """Load a config from a JSON file."""
        return cls.from_json(Path(path).read_bytes())

    def to_json(self) -> bytes:
        """Encode as JSON (the inverse of :meth:`from_json`)."""
        return msgspec.json.encode(self, order="deterministic")


_ALL_DRIFT: frozenset[DriftShape] = frozenset(DRIFT_SHAPES)
