"""Retry decisions and the one place that uses ``backoff``.

Pure helpers say what is worth retrying and how long to wait; :func:`call_with_retries` drives idempotent
calls (MiniMax files/retrieve, uploads, downloads) and submits that provably created nothing. Submits that may
have reached the provider are never retried here: that classification is :func:`submit_may_retry`'s job.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import backoff

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

__all__ = ["Retrier", "call_with_retries", "is_retryable", "retry_delay", "submit_may_retry"]

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
    """Seconds to wait before retry number ``attempt`` (0-based): full-jitter exponential backoff capped at
    ``policy.max_delay``, never below the server's ``retry_after``."""
    ceiling = min(policy.max_delay, policy.base_delay * (2.0 ** min(attempt, 30)))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def _waits(policy: RetryPolicy) -> Generator[float, BaseException | None, None]:
    # backoff sends each exception into the wait generator, so Retry-After can act as a floor.
    attempt = 0
    exc = yield 0.0
    while True:
        hint = None
        if isinstance(exc, RateLimitError):
            hint = exc.retry_after if exc.retry_after is not None else policy.rate_limit_default
        elif isinstance(exc, IdempotencyInProgressError):
            hint = exc.retry_after
        exc = yield retry_delay(attempt, policy, hint)
        attempt += 1


class Retrier:
    """Repeats failed calls by a fixed policy: ``await retrier(call)``. Built once (backoff's decorator is applied
    here, not per call); ``should_retry`` says which library errors are worth repeating."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        should_retry: Callable[[Exception], bool] = is_retryable,
        on_retry: Callable[[Exception, float], None] | None = None,
    ) -> None:
        def backoff_handler(details: Any) -> None:
            if on_retry is not None:
                on_retry(details["exception"], details["wait"])

        async def invoke(call: Callable[[], Awaitable[Any]]) -> Any:
            return await call()

        with warnings.catch_warnings():
            # backoff 2.2.1 calls asyncio.iscoroutinefunction(), deprecated in Python 3.14 (litl/backoff PR
            # #220, never merged). Silence only that warning, only while decorating.
            warnings.filterwarnings(
                "ignore", message="'asyncio.iscoroutinefunction' is deprecated", category=DeprecationWarning
            )
            self._invoke = backoff.on_exception(
                lambda: _waits(policy),
                HailuoError,
                max_tries=policy.max_attempts,
                giveup=lambda exc: not should_retry(exc),
                jitter=None,  # the waits are already jittered, and a Retry-After floor must not be jittered below
                logger=None,  # backoff would log str(exc) and the call's arguments; we log sanitised lines
                on_backoff=backoff_handler,
            )(invoke)

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T:
        result: T = await self._invoke(call)
        return result


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    should_retry: Callable[[Exception], bool] = is_retryable,
    on_retry: Callable[[Exception, float], None] | None = None,
) -> T:
    """``await call()``, retrying library errors that ``should_retry`` accepts, up to ``policy.max_attempts``."""
    return await Retrier(policy, should_retry=should_retry, on_retry=on_retry)(call)
