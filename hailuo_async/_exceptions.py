"""Every exception hailuo_async raises, in one tree.

Validation raises before any I/O; the transport maps aiohttp's exceptions here at its boundary; the provider
codecs turn error bodies into :class:`APIError` subclasses; the engine adds the batch-level ones. No code above
the transport ever sees an ``aiohttp`` exception, and no exception here ever holds an API key.

::

    HailuoError
    ├── InvalidRequestError (ValueError)   bad input, refused before any request (.parameter .value .allowed)
    │   └── BatchFileError                 a batch file that cannot be read, or with bad lines
    │                                      (.source .bad_lines .requests)
    ├── APIError                           the provider answered with an error
    │   │                                  (.provider .status_code .code .message .request_id .retry_after)
    │   ├── AuthenticationError            401/403, MiniMax 1004/2049
    │   ├── InsufficientBalanceError       402, MiniMax 1008/2056
    │   ├── RateLimitError                 429, MiniMax 1002 (.retry_after)
    │   ├── ServerError                    5xx, MiniMax 1000/1001/1024/1033
    │   ├── BadRequestError                other 4xx, MiniMax 2013 (the provider refused the request)
    │   │   └── ContentPolicyError         422, MiniMax 1026/1027 (sensitive content)
    │   ├── IdempotencyInProgressError     409 idempotency_in_progress: the same key is being processed
    │   │                                  (.retry_after); resending that key is safe
    │   └── UnexpectedRedirectError        a 3xx from the API (never followed: credentials stay home)
    ├── TransportError                     no usable HTTP answer (.maybe_sent)
    │   ├── ConnectError                   the request never left (connect failure, pool timeout)
    │   └── ReadTimeoutError (TimeoutError) the answer did not come in time
    ├── DecodeError                        an answer we cannot read (.snippet .task_id)
    ├── DownloadError                      a video transfer that failed verification or kept failing
    ├── SubmissionUncertainError           a submit that may have created a task (.request .idempotency_key)
    ├── GenerationFailedError              the provider ran the task and it failed (.task_id .reason .code)
    ├── GenerationTimeoutError (TimeoutError) our deadline passed (.task_id .waited)
    ├── NotSubmittedError                  a batch stopped before this item was sent (cause in __cause__)
    ├── BudgetExceededError                the next submit would pass the spending cap (.cap .committed .needed);
    │                                      the items it stops fail with NotSubmittedError caused by it
    ├── JournalError                       the batch journal cannot be opened, read or written (.path)
    │   └── JournalBusyError               another process has the batch journal open
    └── BatchError                         some items of a batch failed (.results)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._batchfile import BadLine
    from ._models import Generation, GenerationRequest

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchError",
    "BatchFileError",
    "BudgetExceededError",
    "ConnectError",
    "ContentPolicyError",
    "DecodeError",
    "DownloadError",
    "GenerationFailedError",
    "GenerationTimeoutError",
    "HailuoError",
    "IdempotencyInProgressError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "JournalBusyError",
    "JournalError",
    "NotSubmittedError",
    "RateLimitError",
    "ReadTimeoutError",
    "ServerError",
    "SubmissionUncertainError",
    "TransportError",
    "UnexpectedRedirectError",
]


def format_usd(amount: float) -> str:
    """``amount`` US dollars for a message: ``$0.28``, ``$1,234.50``, or more decimals where cents would hide them
    (``$0.2928``)."""
    cents = f"{amount:,.2f}"
    exact = f"{amount:,.6f}".rstrip("0")
    return "$" + (cents if len(exact.split(".")[1]) <= 2 else exact)


class HailuoError(Exception):
    """Base class of every error raised by hailuo_async."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default pickling; errors cross process and thread
        # boundaries (journal, CLI workers), so restore them from their attributes instead.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[HailuoError], args: tuple[Any, ...], state: dict[str, Any]) -> HailuoError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidRequestError(HailuoError, ValueError):
    """A request parameter is invalid; raised before anything is sent."""

    def __init__(self, parameter: str, value: object, allowed: str, *, provider: str | None = None) -> None:
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        where = f" for {provider}" if provider else ""
        super().__init__(f"invalid {parameter}={shown!r}{where}: {allowed}")
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        self.provider = provider


class BatchFileError(InvalidRequestError):
    """A batch file that cannot be used as it is: it cannot be read, or some of its lines are not valid requests.

    ``bad_lines`` lists every bad line (:class:`BadLine`: its number, the field at fault, the message); ``requests``
    holds the valid lines' requests in file order, for a caller that runs them anyway. ``parameter`` is
    ``"source"``, ``value`` the file as named (``"<stdin>"`` for ``-``) and ``allowed`` the message."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        bad_lines: Sequence[BadLine] = (),
        requests: Sequence[GenerationRequest] = (),
        provider: str | None = None,
    ) -> None:
        HailuoError.__init__(self, message)  # the file's own message, not "invalid parameter=value: ..."
        self.parameter = "source"
        self.value = source
        self.allowed = message
        self.provider = provider
        self.source = source
        self.bad_lines = list(bad_lines)
        self.requests = list(requests)


class APIError(HailuoError):
    """The provider answered with an error. ``retry_after`` is the provider's hint, in seconds, of when to try
    again, where the answer gives one that the library acts on (rate limits, a request still in progress)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int,
        code: str | int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        detail = f"{provider} answered HTTP {status_code}"
        if code is not None:
            detail += f" (code {code})"
        super().__init__(f"{detail}: {message}" + (f" [request id {request_id}]" if request_id else ""))
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after


class AuthenticationError(APIError):
    """The API key is missing, invalid or not allowed to do this (fatal for a batch)."""


class InsufficientBalanceError(APIError):
    """The account has no credit or quota left (fatal for a batch)."""


class RateLimitError(APIError):
    """The provider asked us to slow down; ``retry_after`` is its hint in seconds, if any."""


class ServerError(APIError):
    """The provider failed on its side (5xx or an internal error code)."""


class BadRequestError(APIError):
    """The provider refused the request as invalid."""


class ContentPolicyError(BadRequestError):
    """The provider refused the prompt or an image on content grounds."""


class IdempotencyInProgressError(APIError):
    """apimart's 409 ``idempotency_in_progress``: a request with the same ``Idempotency-Key`` is still being
    processed. The one answer after which resending the same key is known to be safe; ``retry_after`` is the
    provider's hint in seconds, if any."""


class UnexpectedRedirectError(APIError):
    """The API answered with a redirect; it is never followed so credentials cannot leave the API origin."""


class TransportError(HailuoError):
    """No usable HTTP answer arrived. ``maybe_sent`` says whether the server may have seen the request."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class ConnectError(TransportError):
    """The request never left this machine (connection refused, DNS, TLS, connection-pool timeout)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_sent=False)


class ReadTimeoutError(TransportError, TimeoutError):
    """The request was sent but the answer did not arrive in time."""

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_sent=True)


class DecodeError(HailuoError):
    """An answer could not be read; ``snippet`` holds its first bytes (credentials removed). ``task_id`` names
    the task whose status answers kept failing to decode, so a paid task can be recovered by id."""

    def __init__(
        self, message: str, *, provider: str | None = None, snippet: str = "", task_id: str | None = None
    ) -> None:
        super().__init__(message + (f" (body starts {snippet!r})" if snippet else ""))
        self.provider = provider
        self.snippet = snippet
        self.task_id = task_id


class DownloadError(HailuoError):
    """A video could not be downloaded and verified. ``generation`` keeps the paid result (its URL) when known."""

    def __init__(self, message: str, *, generation: Generation | None = None) -> None:
        super().__init__(message)
        self.generation = generation


class SubmissionUncertainError(HailuoError):
    """A submit failed after the request may have reached the provider: a task may exist (and cost money).

    It is never resubmitted automatically. Check the provider's dashboard, or resubmit explicitly."""

    def __init__(
        self, message: str, *, request: GenerationRequest, provider: str, idempotency_key: str | None = None
    ) -> None:
        super().__init__(message)
        self.request = request
        self.provider = provider
        self.idempotency_key = idempotency_key


class GenerationFailedError(HailuoError):
    """The provider ran the task and it failed (content policy, internal failure, cancelled)."""

    def __init__(self, reason: str, *, provider: str, task_id: str, code: str | int | None = None) -> None:
        super().__init__(f"{provider} task {task_id} failed: {reason}" + (f" (code {code})" if code else ""))
        self.reason = reason
        self.provider = provider
        self.task_id = task_id
        self.code = code


class GenerationTimeoutError(HailuoError, TimeoutError):
    """Our own deadline passed before the task finished. The task may still finish and can be waited on again."""

    def __init__(self, *, provider: str, task_id: str, waited: float) -> None:
        super().__init__(f"{provider} task {task_id} still not finished after {waited:.1f}s")
        self.provider = provider
        self.task_id = task_id
        self.waited = waited


class NotSubmittedError(HailuoError):
    """The batch stopped before this item was sent (no money spent); the reason is in ``__cause__``."""


class BudgetExceededError(HailuoError):
    """Submitting the next item would pass the spending cap (``max_spend``), so it was not sent.

    ``cap`` is the cap, ``committed`` what was already committed when the item came up (charged or estimated,
    tasks still running included, submits on their way too) and ``needed`` the item's estimated cost, all in US
    dollars. It is the ``__cause__`` of the :class:`NotSubmittedError` of every item the cap stopped."""

    def __init__(self, *, cap: float, committed: float, needed: float, scope: str = "max_spend") -> None:
        super().__init__(
            f"{scope} {format_usd(cap)}: {format_usd(committed)} committed so far plus this item's estimated "
            f"{format_usd(needed)} would pass the cap; nothing more is submitted"
        )
        self.cap = cap
        self.committed = committed
        self.needed = needed
        self.scope = scope


class BatchError(HailuoError):
    """Some items of a batch failed. ``results`` holds every item's outcome in input order."""

    def __init__(self, results: Sequence[object]) -> None:
        failed = [r for r in results if isinstance(r, BaseException)]
        kinds = sorted({type(r).__name__ for r in failed})
        super().__init__(f"{len(failed)} of {len(results)} items failed ({', '.join(kinds)})")
        self.results = list(results)

    @property
    def errors(self) -> list[tuple[int, BaseException]]:
        """``(index, exception)`` for each failed item."""
        return [(i, r) for i, r in enumerate(self.results) if isinstance(r, BaseException)]


class JournalError(HailuoError):
    """The batch journal cannot be opened, read or written (``path`` names its file); the cause (``sqlite3.Error``,
    ``OSError`` or a decoding error) is in ``__cause__``. A journal that failed a write refuses every later one."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class JournalBusyError(JournalError):
    """Another process is running a batch with the same journal; running both could pay twice."""
