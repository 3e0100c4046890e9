"""The one paced call path: every API request of a client goes through here.

Data flow: a caller (the submit, the poller's checks, ``status()``, MiniMax ``files/retrieve``, image uploads)
hands an :class:`~hailuo_async._http.HttpRequest` to :meth:`PacedSender.call` or :meth:`PacedSender.send`; it
waits for the :class:`~hailuo_async._pacer.RequestPacer`'s token (unless the caller already holds one),
counts the request by route, sends it through the transport, and reports the answer back to the pacer: a 429
(or a rate-limit answer inside a 200, as MiniMax's 1002) pauses and slows every request of the client, any other
answer counts as accepted. Nothing else in the library calls ``Transport.send`` for the API.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TypeVar

from ._exceptions import RateLimitError
from ._http import HttpRequest, HttpResponse, parse_retry_after
from ._pacer import RequestPacer
from ._transport import Transport

__all__ = ["PacedSender"]

T = TypeVar("T")


class PacedSender:
    """Paces, counts and sends API requests; feeds every answer back to the pacer.

    ``rate_limit_default`` is the pause, in seconds, after a 429 that names no ``Retry-After``."""

    def __init__(self, transport: Transport, pacer: RequestPacer, *, rate_limit_default: float) -> None:
        self.transport = transport
        self.pacer = pacer
        self.rate_limit_default = rate_limit_default
        self.by_route: collections.Counter[str] = collections.Counter()
        """Requests sent so far, by route (``submit``, ``status``, ``lookup``, ``retrieve``, ``upload``)."""

    @property
    def requests(self) -> int:
        """Requests sent so far, all routes."""
        return self.by_route.total()

    async def acquire(self, *, submit: bool = False, routine: bool = False) -> None:
        """Wait for the pacer's token for one request (a submit if ``submit``; a check unlikely to find a finish if
        ``routine``, which waits behind submits), to send later with ``paced=True``."""
        await self.pacer.acquire(submit=submit, routine=routine)

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` once a token is free and return the answer, whatever its status, for callers that
        parse it themselves (image uploads). An HTTP 429 slows the client; any other answer counts as accepted."""
        response = await self._transmit(request, submit=False, paced=False)
        self._report(response, None)
        return response

    async def call(
        self,
        request: HttpRequest,
        parse: Callable[[HttpResponse], T],
        *,
        submit: bool = False,
        paced: bool = False,
    ) -> T:
        """Send ``request`` (waiting for a token unless ``paced``: the caller took one with :meth:`acquire`) and
        ``parse`` the answer with the provider's codec. A rate-limit answer in any shape (HTTP 429, MiniMax 1002
        inside a 200) slows the client and raises :class:`RateLimitError`; any other answer, error or not,
        counts as accepted."""
        response = await self._transmit(request, submit=submit, paced=paced)
        try:
            result = parse(response)
        except RateLimitError as exc:
            self._report(response, exc)
            raise
        except Exception:
            self._report(response, None)
            raise
        self._report(response, None)
        return result

    async def _transmit(self, request: HttpRequest, *, submit: bool, paced: bool) -> HttpResponse:
        if not paced:
            await self.pacer.acquire(submit=submit)
        self.by_route[request.route] += 1
        return await self.transport.send(request)

    def _report(self, response: HttpResponse, limited: RateLimitError | None) -> None:
        if limited is None and response.status != 429:
            self.pacer.on_success()
            return
        retry_after = limited.retry_after if limited is not None else parse_retry_after(response.headers)
        self.pacer.on_rate_limited(retry_after, self.rate_limit_default)
