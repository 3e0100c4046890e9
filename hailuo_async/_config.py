"""Small frozen configuration objects, their defaults and the API-key lookup.

Everything tunable about timeouts, polling and retries lives here as immutable values; the client reads them,
the scheduler, poller and transport obey them. Environment variables are read in exactly one function,
:func:`resolve_api_key`.
"""

from __future__ import annotations

import math
import os

import msgspec

from ._exceptions import InvalidRequestError

__all__ = [
    "DEFAULT_POLL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "UNSET",
    "PollPolicy",
    "RetryPolicy",
    "Timeouts",
    "Unset",
    "check_rates",
    "resolve_api_key",
]


class Unset:
    """Type of :data:`UNSET`: "not given, use the client's default", as distinct from ``None`` ("disable")."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = Unset()


def _positive(owner: str, name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
        raise InvalidRequestError(f"{owner}.{name}", value, "a positive number of seconds")
    if not math.isfinite(value):
        raise InvalidRequestError(f"{owner}.{name}", value, "a finite number")


class Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    """Per-request network timeouts, in seconds. There is deliberately no "total": waiting for a free
    connection must never eat into a request's time, and a long download must not be cut off while it flows.

    Usage: ``Timeouts(connect=5, read=30)``."""

    connect: float = 10.0
    """Time to open a connection (TCP and TLS)."""
    read: float = 60.0
    """Longest silence while waiting for an API answer."""
    download_read: float = 60.0
    """Longest silence while a video is being downloaded."""

    def __post_init__(self) -> None:
        for name in ("connect", "read", "download_read"):
            _positive("Timeouts", name, getattr(self, name))


class PollPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How the shared poller checks tasks: its contract, in seconds.

    ``max_lag`` is the promise. For any provider behaviour, the 95th percentile of the detection lag (the provider
    finished -> the result in your hands) stays within ``max_lag``, and no task gets more status checks than a
    plain loop polling it every ``max_lag`` seconds would send; far fewer when the provider's progress, its
    ``estimated_time`` or the batch's finished tasks predict finishes well (every such forecast is checked against
    what happens, see ``docs/architecture.md``). A smaller ``max_lag`` buys lower lag with more checks; a larger
    one saves requests. Rate limits and retries come on top: a check the provider refuses is sent again later."""

    max_lag: float = 2.0
    """Detection lag promised at the 95th percentile; also the interval of the plain loop never exceeded."""
    min_interval: float = 0.5
    """Shortest gap between two checks of one task (at most half of ``max_lag`` is used)."""
    max_interval: float = 60.0
    """Longest gap between two checks of one task, whatever the forecast says."""
    jitter: float = 0.1
    """Relative random spread of checks, always earlier than aimed (0.1 = up to 10 % of the gap)."""
    deadline: float | None = 1800.0
    """Give up waiting for a task after this long (:class:`GenerationTimeoutError`); ``None`` waits forever."""
    status_concurrency: int = 64
    """Status checks in flight at once."""

    def __post_init__(self) -> None:
        for name in ("max_lag", "min_interval", "max_interval"):
            _positive("PollPolicy", name, getattr(self, name))
        _positive("PollPolicy", "deadline", self.deadline, allow_none=True)
        if self.min_interval > self.max_interval:
            raise InvalidRequestError("PollPolicy.min_interval", self.min_interval, "at most max_interval")
        if self.max_lag > self.max_interval:
            raise InvalidRequestError("PollPolicy.max_lag", self.max_lag, "at most max_interval")
        if not 0 <= self.jitter < 1:
            raise InvalidRequestError("PollPolicy.jitter", self.jitter, "a fraction in [0, 1)")
        if isinstance(self.status_concurrency, bool) or self.status_concurrency < 1:
            raise InvalidRequestError("PollPolicy.status_concurrency", self.status_concurrency, ">= 1")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Retries of idempotent calls (status, retrieve, download, upload) and of submits that provably did not
    create a task. Exponential backoff, each wait drawn between half and all of its step, ``Retry-After`` honoured
    as a floor."""

    max_attempts: int = 6
    """Attempts per call, the first included."""
    base_delay: float = 0.5
    """First backoff step in seconds; doubles on each retry."""
    max_delay: float = 30.0
    """Cap on one backoff step."""
    rate_limit_default: float = 5.0
    """Pause after a 429 that carries no ``Retry-After``."""
    lookup_delay: float = 2.0
    """Wait after a submit whose answer was lost before asking the provider whether it created the task (toapis
    looks a submit up by the client's own key), so that a POST still being processed has created it by then."""

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or self.max_attempts < 1:
            raise InvalidRequestError("RetryPolicy.max_attempts", self.max_attempts, "an integer >= 1")
        for name in ("base_delay", "max_delay", "rate_limit_default", "lookup_delay"):
            _positive("RetryPolicy", name, getattr(self, name))


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_POLL = PollPolicy()
DEFAULT_RETRY = RetryPolicy()


def resolve_api_key(env_var: str, api_key: str | None) -> str:
    """The API key: ``api_key`` if given, else the provider's variable, else ``HAILUO_API_KEY``."""
    if api_key is not None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise InvalidRequestError("api_key", "<hidden>", "a non-empty string")
        return api_key.strip()
    for name in (env_var, "HAILUO_API_KEY"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise InvalidRequestError(
        "api_key", None, f"pass api_key=... or set the {env_var} (or HAILUO_API_KEY) environment variable"
    )


def check_rates(max_concurrency: object, requests_per_second: object, submits_per_minute: object) -> None:
    """Raise :class:`InvalidRequestError` unless the client's concurrency and rate options are usable."""
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise InvalidRequestError("max_concurrency", max_concurrency, "an integer >= 1")
    for name, value in (("requests_per_second", requests_per_second), ("submits_per_minute", submits_per_minute)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf
        ):
            raise InvalidRequestError(name, value, "a positive number or None")
