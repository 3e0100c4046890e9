"""Simulator configuration: frozen, JSON-loadable msgspec structs.

Every field has a default, so ``SimulatorConfig()`` is a fault-free simulator whose tasks finish in about three
seconds, queue for 15 % of that time, then report progress growing in a straight line, with no rate limit. The
structs here only describe behaviour: :mod:`._lifecycle` plays a task's life (duration, queueing, progress),
:mod:`._limits` the rate limiters and :mod:`._webhooks` sends the webhooks. Configs are immutable; a running
:class:`~hailuo_async.simulator.Simulator` switches to a new one with ``update_config(**changes)`` or
``configure(config)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
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
    "LimiterKind",
    "Progress",
    "ProgressShape",
    "RateLimit",
    "RetryAfterStyle",
    "SimulatorConfig",
    "Webhooks",
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

# Sources (docs/providers.md, A.3, B.3, C.4 and "Mapping status words"): apimart's "Status-word drift" and `url`
# variant, toapis' status table, `pending` submit and `result.url` variant, MiniMax's numeric file ids, and the
# "Where the video URL sits" table.
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


def _check_positive(name: str, value: float) -> None:
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_range(name: str, value: float | tuple[float, float], check: Callable[[str, float], None]) -> None:
    """Check a field that is either one number or a ``(low, high)`` range."""
    low, high = value if isinstance(value, tuple) else (value, value)
    check(name, low)
    check(name, high)
    if low > high:
        raise ValueError(f"{name} (low, high) needs low <= high, got {value!r}")


class GenerationTimes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Distribution of a task's total generation time (queue + run), in seconds.

    - ``"lognormal"``: ``median * exp(N(0, sigma))``, a long right tail: the 95th percentile is
      ``median * exp(1.645 * sigma)`` (``sigma=1``: 5.2 x the median);
    - ``"uniform"``: uniform in ``[low, high]``;
    - ``"bimodal"``: uniform in ``[low, high]``, then ``factor`` times that for a ``share`` of the tasks (a batch
      mixing short and long videos, or two resolutions);
    - ``"fixed"``: always ``median``.

    The drawn value is clamped to ``[min, max]``; ``max=None`` leaves the tail uncut. Each task's draw is seeded by
    the simulator's seed, its provider, its prompt and how many times that prompt was submitted before, so a run is
    reproducible whatever order the submits arrive in. A ``{{sim:time=S}}`` prompt marker bypasses the
    distribution.
    """

    kind: Literal["lognormal", "uniform", "bimodal", "fixed"] = "lognormal"
    median: float = 3.0
    sigma: float = 0.35
    low: float = 1.0
    high: float = 5.0
    share: float = 0.5
    factor: float = 8.0
    min: float = 0.5
    max: float | None = 10.0

    def __post_init__(self) -> None:
        for name in ("median", "sigma", "low", "high", "min", "factor"):
            _check_non_negative(name, getattr(self, name))
        _check_probability("generation.share", self.share)
        if self.max is not None:
            _check_non_negative("max", self.max)
        if self.low > self.high:
            raise ValueError("generation.low must be <= generation.high")
        if self.max is not None and self.min > self.max:
            raise ValueError("generation.min must be <= generation.max")


ProgressShape = Literal["linear", "none", "steps", "concave", "convex", "stall"]


class Progress(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a task's status answers say its progress is while it runs (after its queued part, which reports 0).

    ``x`` below is the share of the running part elapsed (0 to 1); progress is a whole number, 100 once completed.

    - ``"linear"``: ``99 * x`` (the default);
    - ``"none"``: 0 until done, as the official MiniMax API reports (status words still move queued -> running);
    - ``"steps"``: 0, then each level of ``steps`` in turn, the running part cut into ``len(steps) + 1`` equal
      parts (``steps=(50,)``: 0 for the first half, 50 for the second);
    - ``"concave"``: ``99 * (1 - (1 - x) ** power)``, fast at first, slow at the end;
    - ``"convex"``: ``99 * x ** power``, slow at first, fast at the end;
    - ``"stall"``: linear up to ``stall_level`` at ``x = stall_at``, then ``stall_level`` until done.

    MiniMax's status answers carry no progress at all, so the shape shows only on apimart and toapis. A task keeps
    the shape that was configured when it was created; a hanging task (``{{sim:hang}}``) keeps running at the
    shape's value for ``x = 1`` (99 for ``linear``).
    """

    shape: ProgressShape = "linear"
    steps: tuple[int, ...] = (50,)
    power: float = 2.0
    stall_level: int = 95
    stall_at: float = 0.3

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < level < 100 for level in self.steps):
            raise ValueError(f"progress.steps must be levels between 1 and 99, got {self.steps!r}")
        if any(later <= earlier for earlier, later in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"progress.steps must increase, got {self.steps!r}")
        if not (self.power > 1.0 and math.isfinite(self.power)):
            raise ValueError(f"progress.power must be a finite number > 1, got {self.power!r}")
        if not 0 < self.stall_level < 100:
            raise ValueError(f"progress.stall_level must be between 1 and 99, got {self.stall_level!r}")
        if not 0.0 < self.stall_at <= 1.0:
            raise ValueError(f"progress.stall_at must be within (0, 1], got {self.stall_at!r}")


LimiterKind = Literal["token_bucket", "fixed_window", "sliding_window"]
RetryAfterStyle = Literal["seconds", "exact"]


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A rate limit per (provider, API key), on every API route but uploads. ``rate`` is always the sustained
    number of requests per second the limit lets through, so limits of different kinds compare directly.

    - ``"token_bucket"`` (the default): ``rate`` tokens per second into a bucket of ``burst`` tokens (a full
      bucket at the first request); each request takes one. ``burst=1`` allows no burst, a large one long bursts.
    - ``"fixed_window"``: at most ``rate * window`` requests (rounded down) in each window of ``window`` seconds;
      windows start at whole multiples of ``window`` on the simulator's clock and the count starts afresh in
      each (``window=1``: per second, ``window=60``: per minute). Twice the limit can pass around a boundary.
    - ``"sliding_window"``: at most ``rate * window`` accepted requests in any ``window`` seconds (a log of the
      accepted requests' times).

    ``burst`` is read by the token bucket only, ``window`` by the window kinds only. A limited request answers as
    the provider does (apimart and toapis HTTP 429; MiniMax ``base_resp`` 1002, HTTP 200 unless
    ``minimax_http_errors``) with a ``Retry-After`` giving the true wait until a request would pass: the next
    token, the next window, or the moment the oldest logged request leaves the window. ``retry_after`` is how it
    is written: ``"seconds"`` rounds up to whole seconds, at least 1 (the HTTP form, and the default);
    ``"exact"`` gives decimal seconds rounded up to the millisecond (e.g. ``0.25``). Limited requests are not
    counted against the limit. Changing ``kind`` starts every limiter afresh; other changes apply to the current
    state.
    """

    kind: LimiterKind = "token_bucket"
    rate: float = 5.0
    burst: float = 5.0
    window: float = 1.0
    retry_after: RetryAfterStyle = "seconds"

    def __post_init__(self) -> None:
        _check_positive("rate_limit.rate", self.rate)
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError(f"rate_limit.burst must be >= 1, got {self.burst!r}")
        _check_positive("rate_limit.window", self.window)
        if self.kind != "token_bucket" and self.per_window < 1:
            raise ValueError(f"rate_limit.rate * window must be >= 1, got {self.rate!r} * {self.window!r}")

    @property
    def per_window(self) -> int:
        """Requests a window kind lets through per ``window``: ``rate * window``, rounded down."""
        return math.floor(self.rate * self.window + 1e-9)


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
        _check_range("latency", self.latency, _check_non_negative)


class Webhooks(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the simulator sends the webhooks a submit asks for (``docs/providers.md``, "Additions").

    A submit asks with apimart's top-level ``webhook`` (a base URL: deliveries go to ``<webhook>/callback``),
    toapis' ``metadata.callback_url`` or MiniMax's ``callback_url``. apimart and toapis send one delivery per task,
    when it completes or fails; MiniMax one per state change (``processing``, then ``success`` or ``failed``), after
    a ``{"challenge"}`` the receiver must echo before the task is created. Probabilities are per delivery, drawn
    from the simulator's seed, the task's provider and prompt and the event, so they do not depend on timing.

    - ``toapis_secret``: the key's signing secret; ``toapis_previous_secret``: the secret before a rotation, which
      toapis keeps signing with for 24 h (a second ``v1=`` entry) while it is set.
    - ``toapis_default_url``: the key's default callback URL. When set, a ``metadata.callback_url`` must be
      same-origin with it (400 otherwise, as toapis requires) and submits without one are delivered to it; None
      (the default) checks nothing.
    - ``apimart_port_check``: refuse (400) an apimart ``webhook`` on a port other than 80 or 443, as apimart
      documents, unless its host is loopback (``localhost``, ``127.0.0.0/8``, ``::1``) so tests can use any port.
    - ``drop``: share of deliveries never sent. ``duplicate``: share sent twice (the same event, the copy right after
      the first). ``delay``: seconds between the event and its delivery, fixed or uniform in ``[low, high]``.
    - ``reorder``: share of MiniMax ``processing`` callbacks held back until the task's ``success`` or ``failed``
      one has been sent (or dropped), so they arrive out of order; the other providers send one delivery per task.
      Deliveries of different tasks overtake one another with a ``delay`` range (each draws its own) and retries.
    - ``timeout``: seconds a receiver has to answer (apimart documents about 10 s). ``retry_delays``: the pauses
      before each retry after a timeout, a connection error or a 5xx (apimart: about 10, 30, 60 s; empty: no
      retries); a 4xx (or 3xx: redirects are not followed) is never retried. The schedule applies to all three
      providers (toapis and MiniMax document none).
    - ``challenge_timeout``: seconds MiniMax's receiver has to echo the challenge (3 s documented).
    """

    toapis_secret: str = "sim-toapis-webhook-secret"  # noqa: S105 - a fixed default for a local test server
    toapis_previous_secret: str | None = None
    toapis_default_url: str | None = None
    apimart_port_check: bool = False
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float | tuple[float, float] = 0.0
    reorder: float = 0.0
    timeout: float = 10.0
    retry_delays: tuple[float, ...] = (10.0, 30.0, 60.0)
    challenge_timeout: float = 3.0

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder"):
            _check_probability(f"webhooks.{name}", getattr(self, name))
        _check_range("webhooks.delay", self.delay, _check_non_negative)
        _check_positive("webhooks.timeout", self.timeout)
        _check_positive("webhooks.challenge_timeout", self.challenge_timeout)
        for pause in self.retry_delays:
            _check_non_negative("webhooks.retry_delays", pause)
        if not self.toapis_secret:
            raise ValueError("webhooks.toapis_secret must not be empty")
        if self.toapis_previous_secret == "":
            raise ValueError("webhooks.toapis_previous_secret must be null or not empty")
        url = self.toapis_default_url
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"webhooks.toapis_default_url must be an http(s) URL, got {url!r}")


class SimulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the simulator does, as one immutable, JSON-loadable value.

    - ``host``, ``port``, ``cdn_port``: where to bind (ports 0 pick free ones). Read at start only.
    - ``seed``: seeds every random draw (generation times, queued shares, failures, drift, faults) for
      reproducible runs.
    - ``generation``: the distribution of a task's total time (:class:`GenerationTimes`).
    - ``queue_fraction``: the share of a task's total time spent queued (status queued, progress 0): one number
      for every task, or a ``(low, high)`` range each task draws its share from (seeded), e.g. ``(0.0, 0.7)``.
    - ``progress``: what progress the status answers report while a task runs (:class:`Progress`). The time, the
      queued share and the shape are fixed per task when it is created.
    - ``estimated_time_error``: relative noise of apimart's ``estimated_time`` (whole seconds, >= 1).
    - ``estimated_time_bias``: how many times the true time apimart's ``estimated_time`` says (0.25: four times too
      short, as estimates made for another resolution or model are).
    - ``url_ttl``: seconds a signed video URL stays valid (each status poll signs a fresh one); None: each provider's
      documented lifetime (:data:`APIMART_URL_TTL` 72 h, :data:`TOAPIS_URL_TTL` 24 h, :data:`MINIMAX_URL_TTL` 9 h).
    - ``upload_ttl``: seconds an uploaded image's URL stays valid (fixed at upload); None: the provider's lifetime.
    - ``submit_delay``: seconds a submit spends being processed before its task exists. Meanwhile apimart answers
      another submit with the same ``Idempotency-Key`` 409 ``idempotency_in_progress`` (``Retry-After: 1``).
    - ``failure_rate``: probability that a task fails with a content-policy error.
    - ``video_bytes``: size of each MP4 (fixed per task when it is created).
    - ``faults``: see :class:`Faults`. ``rate_limit``: a limiter per provider and API key (:class:`RateLimit`;
      None: no limit).
    - ``minimax_http_errors``: MiniMax errors use real HTTP statuses (401/402/404/429/400) instead of 200.
    - ``keys``: the accepted API keys (None: any non-empty bearer token).
    - ``credits``: tasks each API key may create (None: unlimited).
    - ``idempotency``: apimart honours ``Idempotency-Key``.
    - ``drift``: ``True`` (every shape), ``False``, or a set of :data:`DRIFT_SHAPES` names (each one's entry says what
      it changes and its source); about half of the tasks (a seeded per-task draw) answer in every enabled shape.
    - ``webhooks``: how the webhooks submits ask for are sent (:class:`Webhooks`); read when each one is sent.

    Every field except ``host``/``port``/``cdn_port``/``seed`` takes effect on the next request after a change.
    """

    host: str = "127.0.0.1"
    port: int = 0
    cdn_port: int = 0
    seed: int = 0
    generation: GenerationTimes = GenerationTimes()
    queue_fraction: float | tuple[float, float] = 0.15
    progress: Progress = Progress()
    estimated_time_error: float = 0.3
    estimated_time_bias: float = 1.0
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
    webhooks: Webhooks = Webhooks()

    def __post_init__(self) -> None:
        _check_range("queue_fraction", self.queue_fraction, _check_probability)
        _check_probability("failure_rate", self.failure_rate)
        _check_non_negative("estimated_time_error", self.estimated_time_error)
        if not (self.estimated_time_bias > 0 and math.isfinite(self.estimated_time_bias)):
            raise ValueError(f"estimated_time_bias must be a finite number > 0, got {self.estimated_time_bias!r}")
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
