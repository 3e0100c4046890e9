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

__all__ = ["FaultRoute", "Faults", "GenerationTimes", "RateLimit", "SimulatorConfig"]

FaultRoute = Literal["submit", "status", "retrieve", "upload", "cdn"]

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
    every API route: submit, status, retrieve, upload; add ``"cdn"`` to hit the CDN too; ``malformed`` never applies
    to the CDN). ``submit_then_drop`` applies to submits only and ``cdn_truncate`` to CDN video downloads only,
    whatever ``routes`` says.

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
    - ``url_ttl``: seconds a signed video URL stays valid (each status poll signs a fresh one).
    - ``failure_rate``: probability that a task fails with a content-policy error.
    - ``video_bytes``: size of each MP4 (fixed per task when it is created).
    - ``faults``: see :class:`Faults`. ``rate_limit``: a token bucket per provider and API key (None: no limit).
    - ``minimax_http_errors``: MiniMax errors use real HTTP statuses (401/402/404/429/400) instead of 200.
    - ``keys``: the accepted API keys (None: any non-empty bearer token).
    - ``credits``: tasks each API key may create (None: unlimited).
    - ``idempotency``: apimart honours ``Idempotency-Key``.
    - ``drift``: about half of the tasks answer the providers' other documented response shapes.

    Every field except ``host``/``port``/``cdn_port``/``seed`` takes effect on the next request after a change.
    """

    host: str = "127.0.0.1"
    port: int = 0
    cdn_port: int = 0
    seed: int = 0
    generation: GenerationTimes = GenerationTimes()
    queue_fraction: float = 0.15
    estimated_time_error: float = 0.3
    url_ttl: float = 86400.0
    failure_rate: float = 0.0
    video_bytes: int = 65536
    faults: Faults = Faults()
    rate_limit: RateLimit | None = None
    minimax_http_errors: bool = False
    keys: tuple[str, ...] | None = None
    credits: int | None = None
    idempotency: bool = True
    drift: bool = False

    def __post_init__(self) -> None:
        _check_probability("queue_fraction", self.queue_fraction)
        _check_probability("failure_rate", self.failure_rate)
        _check_non_negative("estimated_time_error", self.estimated_time_error)
        if not (self.url_ttl > 0 and math.isfinite(self.url_ttl)):
            raise ValueError(f"url_ttl must be > 0, got {self.url_ttl!r}")
        if self.video_bytes < _MIN_VIDEO_BYTES:
            raise ValueError(f"video_bytes must be >= {_MIN_VIDEO_BYTES}, got {self.video_bytes!r}")
        if self.credits is not None and self.credits < 0:
            raise ValueError(f"credits must be >= 0, got {self.credits!r}")
        for port in (self.port, self.cdn_port):
            if not 0 <= port <= 65535:
                raise ValueError(f"invalid port {port!r}")

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
