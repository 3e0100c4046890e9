"""One-shot helpers: open a :class:`HailuoClient`, do one job, close it.

Data flow: :func:`generate` and :func:`gather_generations` split their keyword arguments into the client's options
(:data:`CLIENT_OPTIONS`) and the request's fields, then run the client's own method inside ``async with``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ._batch import EventCallback, ItemInput
from ._client import HailuoClient
from ._config import UNSET, Unset
from ._exceptions import HailuoError
from ._models import Generation

__all__ = ["CLIENT_OPTIONS", "gather_generations", "generate"]

CLIENT_OPTIONS = frozenset(
    {
        "api_key",
        "base_url",
        "max_concurrency",
        "requests_per_second",
        "submits_per_minute",
        "timeouts",
        "poll",
        "retry",
        "journal",
        "resubmit_uncertain",
        "download_concurrency",
        "max_download_bytes",
        "allow_insecure_http",
        "transport",
        "clock",
        "record_to",
        "prices",
        "max_spend",
        "webhook",
    }
)
"""The keyword arguments of :class:`HailuoClient` that :func:`generate` passes to the client (the rest are
request fields)."""


async def gather_generations(
    items: Iterable[ItemInput],
    *,
    provider: str = "apimart",
    return_exceptions: bool = False,
    download_to: str | os.PathLike[str] | None = None,
    on_event: EventCallback | None = None,
    timeout: float | Unset | None = UNSET,
    **client_options: Any,
) -> list[Generation | HailuoError]:
    """One-shot helper: open a :class:`HailuoClient` and run :meth:`~HailuoClient.gather_generations`."""
    async with HailuoClient(provider, **client_options) as client:
        return await client.gather_generations(
            items, return_exceptions=return_exceptions, download_to=download_to, on_event=on_event, timeout=timeout
        )


async def generate(
    request: ItemInput | None = None,
    /,
    *,
    provider: str = "apimart",
    timeout: float | Unset | None = UNSET,
    download_to: str | os.PathLike[str] | None = None,
    client_options: dict[str, Any] | None = None,
    **options: Any,
) -> Generation:
    """One-shot helper: open a :class:`HailuoClient`, generate one video, close the client.

    ``options`` are request fields (``duration=``, ``resolution=``...) or client options (``api_key=``,
    ``base_url=``...)."""
    merged = dict(client_options or {})
    for name in list(options):
        if name in CLIENT_OPTIONS:
            merged[name] = options.pop(name)
    async with HailuoClient(provider, **merged) as client:
        return await client.generate(request, timeout=timeout, download_to=download_to, **options)
