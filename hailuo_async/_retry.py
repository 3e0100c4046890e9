"""Retry decisions and the one place that uses ``backoff``.

Pure helpers say what is worth retrying and how long to wait; one :class:`Retrier` per kind of call drives the
idempotent ones (status, look-ups, MiniMax files/retrieve, uploads) and submits that provably created nothing,
sleeping on the engine's clock. Submits that may have reached the provider are never retried blindly: that
classification is :func:`submit_may_retry`'s job. The poller does not sleep between tries of a check (it
reschedules the check with :func:`retry_delay`), and downloads resume from their last byte with the same delays.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import backoff

from ._clock import Clock, SystemClock
from ._config import RetryPolicy
from ._exceptions import (
    APIError,
    ConnectError,
    DecodeError,
    HailuoError,
    IdempotencyInProgressError,
    RateLimitError,
    ServerError,
    TransportError,
)

__all__ = ["Retrier", "is_retryable", "retry_delay", "submit_may_retry"]

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Whether an idempotent call that failed with ``exc`` is worth repeating."""
    if isinstance(exc, (TransportError, RateLimitError, ServerError)):
        return True
    if isinstance(exc, APIError):
        return exc.status_code in (408, 409, 425)
    return isinstance(exc, DecodeError)  # a truncated or garbled answer to a GET: ask again


def submit_may_retry(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether a failed submit may be sent again without risking a second paid task.

    Safe: the request never left (connect failure, pool timeout), the provider rejected it unprocessed
    (429 / MiniMax 1002), or it said a request under the same idempotency key is still in progress (resending
    that key is how to learn its outcome). With an idempotency key the provider honours, any transient failure is
    safe too."""
    if isinstance(exc, (ConnectError, RateLimitError, IdempotencyInProgressError)):
        return True
    if idempotent:
        return isinstance(exc, (TransportError, ServerError, DecodeError))
    return False


def retry_delay(attempt: int, policy: RetryPolicy, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): exponential backoff capped at ``policy.max_delay``,
    each wait drawn between half and all of its step, never below the server's ``retry_after``."""
    ceiling = min(policy.max_delay, policy.base_delay * (2.0 ** min(attempt, 30)))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def _hint(exc: BaseException, policy: RetryPolicy) -> float | None:
    """The server's own floor for the next wait, if its answer named one."""
    if isinstance(exc, RateLimitError):
        return exc.retry_after if exc.retry_after is not None else policy.rate_limit_default
    if isinstance(exc, IdempotencyInProgressError):
        return exc.retry_after
    return None


class Retrier:
    """Repeats failed calls by a fixed policy: ``await retrier(call)``. Built once (backoff's decorator is applied
    here, not per call); ``should_retry`` says which library errors are worth repeating.

    backoff decides whether to try again (attempts, give-up); the waits between attempts, jittered exponential
    with the server's ``Retry-After`` as a floor (:func:`retry_delay`), are slept on ``clock``, so a test's
    :class:`~hailuo_async.FakeClock` governs them like every other wait of the engine."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Clock | None = None,
        should_retry: Callable[[Exception], bool] = is_retryable,
        on_retry: Callable[[Exception, float], None] | None = None,
    ) -> None:
        sleeper: Clock = clock or SystemClock()

        async def pause(details: Any) -> None:
            exc = details["exception"]
            delay = retry_delay(details["tries"] - 1, policy, _hint(exc, policy))
            if on_retry is not None:
                on_retry(exc, delay)
            await sleeper.sleep(delay)

        async def invoke(call: Callable[[], Awaitable[Any]]) -> Any:
            return await call()

        with warnings.catch_warnings():
            # backoff 2.2.1 calls asyncio.iscoroutinefunction(), deprecated in Python 3.14 (litl/backoff PR
            # #220, never merged). Silence only that warning, only while decorating.
            warnings.filterwarnings(
                "ignore", message="'asyncio.iscoroutinefunction' is deprecated", category=DeprecationWarning
            )
            self._invoke = backoff.on_exception(
                backoff.constant,
                HailuoError,
                interval=0,  # backoff's own sleep is a mere checkpoint: the real wait is ``pause`` on the clock
                max_tries=policy.max_attempts,
                giveup=lambda exc: not should_retry(exc),
                jitter=None,
                logger=None,  # backoff would log str(exc) and the call's arguments; we log sanitised lines
                on_backoff=pause,
            )(invoke)

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T:
        result: T = await self._invoke(call)
        return result
