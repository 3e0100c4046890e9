"""hailuo_async: generate MiniMax Hailuo videos (Hailuo-02, 2.3, 2.3-Fast) at scale, asyncio-first.

Data flow: :class:`GenerationRequest` (validated) -> provider codec (:mod:`hailuo_async.providers`, pure) ->
transport (:class:`AiohttpTransport`, the only network I/O) -> one shared poller per :class:`HailuoClient` ->
:class:`Generation` (optionally saved to disk, optionally journaled for resume).

Usage::

    from hailuo_async import HailuoClient

    async with HailuoClient("apimart") as client:
        video = await client.generate("A cat on the grass [Push in]", duration=5, resolution="768p")
"""

from ._batchfile import BadLine, load_requests
from ._client import HailuoClient, ItemInput
from ._clock import Clock, FakeClock, SystemClock
from ._config import (
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    UNSET,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from ._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BatchError,
    BatchFileError,
    BudgetExceededError,
    ConnectError,
    ContentPolicyError,
    DecodeError,
    DownloadError,
    GenerationFailedError,
    GenerationTimeoutError,
    HailuoError,
    IdempotencyInProgressError,
    InsufficientBalanceError,
    InvalidRequestError,
    JournalBusyError,
    JournalError,
    NotSubmittedError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    SubmissionUncertainError,
    TransportError,
    UnexpectedRedirectError,
)
from ._http import HttpRequest, HttpResponse
from ._journal import Journal, JournalItem, JournalSummary
from ._models import (
    CAMERA_DIRECTIVES,
    DEFAULT_MODEL,
    MAX_PROMPT_LENGTH,
    MODELS,
    ClientStatistics,
    Generation,
    GenerationRequest,
    ItemEvent,
    Task,
    TaskState,
    TaskStatus,
)
from ._oneshot import gather_generations, generate
from ._prices import DEFAULT_PRICES, Estimate, EstimateLine, ItemEstimate, Price, PriceTable, estimate
from ._transport import AiohttpTransport, MockTransport, StreamResponse, Transport
from ._version import __version__
from ._webhook import Webhook, WebhookReply

__all__ = [
    "CAMERA_DIRECTIVES",
    "DEFAULT_MODEL",
    "DEFAULT_POLL",
    "DEFAULT_PRICES",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "MAX_PROMPT_LENGTH",
    "MODELS",
    "UNSET",
    "APIError",
    "AiohttpTransport",
    "AuthenticationError",
    "BadLine",
    "BadRequestError",
    "BatchError",
    "BatchFileError",
    "BudgetExceededError",
    "ClientStatistics",
    "Clock",
    "ConnectError",
    "ContentPolicyError",
    "DecodeError",
    "DownloadError",
    "Estimate",
    "EstimateLine",
    "FakeClock",
    "Generation",
    "GenerationFailedError",
    "GenerationRequest",
    "GenerationTimeoutError",
    "HailuoClient",
    "HailuoError",
    "HttpRequest",
    "HttpResponse",
    "IdempotencyInProgressError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "ItemEstimate",
    "ItemEvent",
    "ItemInput",
    "Journal",
    "JournalBusyError",
    "JournalError",
    "JournalItem",
    "JournalSummary",
    "MockTransport",
    "NotSubmittedError",
    "PollPolicy",
    "Price",
    "PriceTable",
    "RateLimitError",
    "ReadTimeoutError",
    "RetryPolicy",
    "ServerError",
    "StreamResponse",
    "SubmissionUncertainError",
    "SystemClock",
    "Task",
    "TaskState",
    "TaskStatus",
    "Timeouts",
    "Transport",
    "TransportError",
    "UnexpectedRedirectError",
    "Webhook",
    "WebhookReply",
    "__version__",
    "estimate",
    "gather_generations",
    "generate",
    "load_requests",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("hailuo_async._"):
        _obj.__module__ = "hailuo_async"
del _name, _obj
