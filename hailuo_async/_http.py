"""Plain HTTP values passed between the provider codecs and the transport, and pure header helpers.

Codecs build :class:`HttpRequest` values with paths relative to the provider's base URL and read
:class:`HttpResponse` values; only the transport turns them into network traffic. Nothing here does I/O.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Literal

import msgspec

__all__ = ["HttpRequest", "HttpResponse", "Route", "parse_retry_after", "redact"]

Route = Literal["submit", "status", "lookup", "retrieve", "upload", "download"]


class HttpRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request to the provider's API; ``path`` is relative to the base URL and may carry a query string."""

    method: str
    path: str
    route: Route
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


class HttpResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A complete answer: status, headers (lower-case names) and body bytes."""

    status: int
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower())

    @property
    def request_id(self) -> str | None:
        """The provider's request or trace id, from the usual headers."""
        for name in ("x-request-id", "request-id", "trace-id", "x-trace-id", "x-amzn-requestid"):
            value = self.headers.get(name)
            if value:
                return value
        return None


MAX_RETRY_AFTER = 300.0
"""Longest server-requested pause honoured, in seconds; longer hints are capped."""


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``; ``None`` if absent.

    Negative values become 0, absurd ones are capped at :data:`MAX_RETRY_AFTER`."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return min(max(value, 0.0), MAX_RETRY_AFTER)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        value = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(value):
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER)


_SECRET_PATTERNS = re.compile(
    r"((?:Bearer\s+)+)[^\s\"',;]+"
    r"|((?:sig|signature|token|key|api_key|apikey|X-Amz-Signature|exp)=(?:Bearer\s+)*)[^&\s\"']+"
    r"|((?<![A-Za-z0-9])sk-)[^\s\"',;&]{6,}",
    re.IGNORECASE,
)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets, bearer tokens and signed-URL parameters masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRET_PATTERNS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "***", text)
