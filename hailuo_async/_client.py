"""HailuoClient: the facade that turns requests into finished videos, one or many at once.

Data flow: the client checks its options and keeps them as attributes -> :class:`~._engine.Parts` builds and wires
the parts of the data flow from them (:mod:`._engine`), each in its own module: local frames (:mod:`._images`) ->
the money-safe submit (:mod:`._submit`) -> the one paced call path every request takes (:mod:`._sender`) -> the
shared poller (:mod:`._poller`) -> saving videos (:mod:`._download`); batches and journal resume live in
:mod:`._batch`, prices and estimates in :mod:`._prices`, the spending caps in :mod:`._ledger`. The client owns the
lifecycle (``async with``: the parts of an open client are made on entering, closed on leaving) and offers the
public methods; its statistics are gathered from the parts' own counters.
"""

from __future__ import annotations

import contextlib
import enum
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec

from ._batch import EventCallback, ItemInput, priced_items, stream_outcomes, to_request
from ._clock import Clock, SystemClock
from ._config import (
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    UNSET,
    PollPolicy,
    RetryPolicy,
    Timeouts,
    Unset,
    check_rates,
)
from ._download import check_destination
from ._engine import Parts, Running, make_transport
from ._exceptions import BatchError, DownloadError, HailuoError, InvalidRequestError, NotSubmittedError
from ._journal import Journal
from ._ledger import Ledger, SpendCap
from ._models import ClientStatistics, Generation, Task, TaskState, TaskStatus
from ._poller import Outcome, Poller
from ._prices import Estimate, PriceTable, PriceTableInput, as_price_table
from ._resume import Plan
from ._transport import Transport, check_base_url
from ._webhook import Webhook, WebhookReply, resolve_webhook
from .providers import Provider, get_provider

__all__ = ["HailuoClient", "ItemInput"]


class _State(enum.Enum):
    UNOPENED = 1
    OPEN = 2
    CLOSED = 3


class HailuoClient:
    """An asyncio client for one provider. Open it with ``async with``; it cannot be reopened once closed.

    Usage::

        async with HailuoClient("apimart") as client:            # key from APIMART_API_KEY
            video = await client.generate("A cat on the grass", duration=5, resolution="768p")
            results = await client.gather_generations(prompts, return_exceptions=True)

    Parameters:
        provider: ``"apimart"``, ``"toapis"`` or ``"minimax"`` (or a :class:`~hailuo_async.providers.Provider`).
        api_key: the key; defaults to the provider's variable (``APIMART_API_KEY``, ``TOAPIS_API_KEY``,
            ``MINIMAX_API_KEY``), then ``HAILUO_API_KEY``.
        base_url: the API root, may carry a path prefix; plain http only for loopback hosts unless
            ``allow_insecure_http``.
        max_concurrency: submits in flight at once (and the size of the connection pools).
        requests_per_second: a fixed budget for all API requests; ``None`` learns the limit from 429s.
        submits_per_minute: a budget for submits only; by default the provider's documented limit (MiniMax).
        timeouts, poll, retry: :class:`Timeouts`, :class:`PollPolicy`, :class:`RetryPolicy`.
        journal: a SQLite file that makes batches resumable (see :meth:`gather_generations`).
        resubmit_uncertain: on resume, resubmit items whose earlier submit may or may not have created a task
            (off: they are reported as :class:`SubmissionUncertainError`; apimart resends with the original
            idempotency key either way).
        download_concurrency, max_download_bytes: bounds for saving videos.
        transport: replace the network (e.g. :class:`MockTransport`); clock: replace time (e.g. :class:`FakeClock`).
        record_to: a folder; every API request and answer is also written there as one JSON file each (key,
            credentials, cookies and URL signatures masked), ready to become a test fixture.
        prices: your own price table, replacing the default one (:data:`~hailuo_async.DEFAULT_PRICES`: MiniMax's
            published prices; none for apimart and toapis): a :class:`PriceTable` or
            ``{provider: {model: {resolution: {duration: usd}}}}``. Used by :meth:`estimate`, the spending caps and
            the statistics' ``spent``.
        max_spend: a spending cap in US dollars over everything this client submits: a submit whose estimated cost
            would take the spend committed so far (charged or estimated, running tasks included) past it is not
            sent (:class:`NotSubmittedError` caused by :class:`BudgetExceededError`), nor is anything after it in
            the same batch. Every item must then have a price.
        webhook: a :class:`Webhook`: each submit asks the provider to call back when its task ends, so results
            arrive without status requests; with ``listen`` the client serves the deliveries itself while it is open,
            without it hand them in with :meth:`handle_webhook` from your own web app. Tasks are still polled as
            a safety net (``Webhook.fallback_lag``): a lost delivery delays a result, never loses it.
    """

    def __init__(
        self,
        provider: str | Provider = "apimart",
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        max_concurrency: int = 16,
        requests_per_second: float | None = None,
        submits_per_minute: float | Unset | None = UNSET,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        poll: PollPolicy = DEFAULT_POLL,
        retry: RetryPolicy = DEFAULT_RETRY,
        journal: str | os.PathLike[str] | None = None,
        resubmit_uncertain: bool = False,
        download_concurrency: int = 4,
        max_download_bytes: int = 2 * 1024**3,
        allow_insecure_http: bool = False,
        transport: Transport | None = None,
        clock: Clock | None = None,
        record_to: str | os.PathLike[str] | None = None,
        prices: PriceTableInput | None = None,
        max_spend: float | None = None,
        webhook: Webhook | None = None,
    ) -> None:
        self.provider = provider if isinstance(provider, Provider) else get_provider(provider)
        ledger = Ledger(self.provider, as_price_table(prices), None if max_spend is None else SpendCap(max_spend))
        if isinstance(submits_per_minute, Unset):
            submits_per_minute = self.provider.submit_budget_per_minute
        check_rates(max_concurrency, requests_per_second, submits_per_minute)
        self.base_url = check_base_url(
            base_url or self.provider.default_base_url, allow_insecure_http=allow_insecure_http
        )
        self.max_concurrency = max_concurrency
        self.requests_per_second = requests_per_second
        self.submits_per_minute: float | None = submits_per_minute
        self.timeouts = timeouts
        self.poll = poll
        self.retry = retry
        self.journal_path = None if journal is None else Path(journal)
        self.resubmit_uncertain = resubmit_uncertain
        self.download_concurrency = download_concurrency
        self.max_download_bytes = max_download_bytes
        self.clock: Clock = clock or SystemClock()
        if webhook is not None and not isinstance(webhook, Webhook):
            raise InvalidRequestError("webhook", webhook, "a Webhook(listen=..., public_url=..., secret=...) or None")
        self.webhook = None if webhook is None else resolve_webhook(webhook)
        transport = make_transport(
            self, transport, api_key=api_key, record_to=record_to, allow_insecure_http=allow_insecure_http
        )
        self._parts = Parts(self, transport, ledger)
        self._running: Running | None = None  # the parts of the open client
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        return f"HailuoClient({self.provider.name!r}, base_url={self.base_url!r}, api_key='***')"

    # -- lifecycle ----------------------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The transport in use."""
        return self._parts.transport

    async def __aenter__(self) -> HailuoClient:
        if self._state is _State.CLOSED:
            raise RuntimeError("a HailuoClient cannot be reopened once closed; create a new one")
        if self._state is _State.OPEN:
            raise RuntimeError("this HailuoClient is already open")
        self._running = await self._parts.open(
            self, download=lambda generation, folder, index: self.download(generation, folder, index=index)
        )
        self._state = _State.OPEN
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop polling and close every session and the journal. Safe to call twice."""
        running = self._running if self._state is _State.OPEN else None
        self._state = _State.CLOSED
        if running is not None:
            await self._parts.close(running)

    def _open_parts(self) -> Running:
        """The parts of the open client; raises :class:`RuntimeError` when it is not open."""
        if self._state is not _State.OPEN or self._running is None:
            state = "closed" if self._state is _State.CLOSED else "not open"
            raise RuntimeError(f"HailuoClient is {state}; use it inside 'async with HailuoClient(...) as client:'")
        return self._running

    def _require_open(self) -> Poller:
        """The open client's poller; raises :class:`RuntimeError` when it is not open."""
        return self._open_parts().poller

    @property
    def journal(self) -> Journal | None:
        """The open journal, if the client was given one."""
        return self._parts.book.journal

    # -- webhooks -----------------------------------------------------------------------------------------

    async def handle_webhook(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        """Answer one webhook delivery that your own web app received (the client was made with a
        ``Webhook(public_url=...)`` that reaches it): ``path`` as requested, ``body`` the raw bytes. Returns the
        status, headers and body to answer with; never raises for a bad delivery (401, 400, 413... and nothing
        changes). Mount it under ``Webhook.path``; see ``examples/webhook_aiohttp.py``."""
        receiver = self._parts.receiver
        if receiver is None:
            raise InvalidRequestError("webhook", None, "a Webhook given to HailuoClient(webhook=...)")
        return await receiver.handle(method, path, headers, body)

    # -- statistics ---------------------------------------------------------------------------------------

    def statistics(self) -> ClientStatistics:
        """A frozen snapshot of the client's counters."""
        return self._parts.statistics(self._running)

    # -- money --------------------------------------------------------------------------------------------

    @property
    def prices(self) -> PriceTable:
        """The price table in use (``prices=``, else :data:`~hailuo_async.DEFAULT_PRICES`)."""
        return self._parts.ledger.prices

    def estimate(self, items: Iterable[ItemInput]) -> Estimate:
        """What ``items`` (prompts or requests) would cost with this client's provider and prices, sending
        nothing: per item, the total and the items without a known price (:class:`Estimate`). An item without a
        duration or resolution is priced at the provider's default for its model."""
        return self._parts.ledger.estimate(items)

    # -- single tasks -------------------------------------------------------------------------------------

    async def submit(self, request: ItemInput | None = None, /, **options: Any) -> Task:
        """Submit one generation and return its :class:`Task` without waiting for the video.

        ``request`` is a prompt or a :class:`GenerationRequest`; ``options`` are its fields
        (``duration=``, ``resolution=``, ``first_frame=`` ...). Invalid input raises
        :class:`InvalidRequestError` before anything is sent."""
        running = self._open_parts()
        generation_request = to_request(request if request is not None else options.pop("prompt", None), options)
        self.provider.validate(generation_request)
        ledger = self._parts.ledger
        ledger.require_prices({0: generation_request}, ledger.caps())
        with self._parts.closing.watch() as closing, closing:
            return await self._parts.submit(running.frames, generation_request, Plan(key=uuid.uuid4().hex))
        raise NotSubmittedError("not submitted: the client was closed before the request was sent")

    async def wait(self, task: Task, *, timeout: float | Unset | None = UNSET) -> Generation:
        """Wait for ``task`` to finish; raises :class:`GenerationFailedError` or :class:`GenerationTimeoutError`.

        ``timeout`` (seconds from now) defaults to the poll policy's deadline; ``None`` waits forever."""
        poller = self._require_open()
        deadline = self.poll.deadline if isinstance(timeout, Unset) else timeout
        done = anyio.Event()
        box: list[Outcome] = []

        def resolve(outcome: Outcome) -> None:
            box.append(outcome)
            done.set()

        poller.track(task, resolve, deadline=deadline)
        try:
            await done.wait()
        finally:
            if not box:
                poller.untrack(task.task_id, resolve)
        outcome = self._parts.ledger.settle(box[0])
        self._parts.counters.count_outcome(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def status(self, task: Task | str) -> TaskStatus:
        """Ask the provider once for a task's status (a ``Task`` or a bare task id)."""
        poller = self._require_open()
        task_id = task.task_id if isinstance(task, Task) else task
        request = self.provider.build_status(task_id)

        async def call() -> TaskStatus:
            status = await self._parts.sender.call(request, self.provider.parse_status)
            if status.state is TaskState.COMPLETED and status.video_url is None and status.file_id:
                url, expires = await poller.fetch_url(status.file_id)
                status = msgspec.structs.replace(status, video_url=url, expires_at=expires)
            return status

        return await self._parts.retrier(call)

    async def generate(
        self,
        request: ItemInput | None = None,
        /,
        *,
        timeout: float | Unset | None = UNSET,
        download_to: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Generation:
        """Submit one generation and wait for the video (saved into ``download_to`` if given; the folder is
        checked before anything is sent)."""
        if download_to is not None:
            await anyio.to_thread.run_sync(check_destination, download_to)
        task = await self.submit(request, **options)
        generation = await self.wait(task, timeout=timeout)
        if download_to is not None:
            generation = await self.download(generation, download_to)
        return generation

    async def download(
        self, generation: Generation, dest: str | os.PathLike[str], *, index: int | None = None
    ) -> Generation:
        """Save the video into the folder ``dest``; returns the generation with ``path`` set.

        Streams through a session that carries no credentials, verifies size and MP4 signature, renames
        atomically, never overwrites a different file, and refreshes an expired URL by asking for the status."""
        running = self._open_parts()

        async def refresh() -> Generation:
            status = await self.status(generation.task_id)
            if status.video_url is None:
                raise DownloadError(f"task {generation.task_id} no longer offers its video")
            return msgspec.structs.replace(generation, video_url=status.video_url, expires_at=status.expires_at)

        saved = await running.downloader.save(generation, Path(dest), index=index, refresh=refresh)
        self._parts.counters.downloads += 1
        return saved

    # -- batches ------------------------------------------------------------------------------------------

    async def gather_generations(
        self,
        items: Iterable[ItemInput],
        *,
        return_exceptions: bool = False,
        download_to: str | os.PathLike[str] | None = None,
        on_event: EventCallback | None = None,
        timeout: float | Unset | None = UNSET,
        max_spend: float | None = None,
    ) -> list[Generation | HailuoError]:
        """Generate every item (prompts and :class:`GenerationRequest` mixed); results in input order.

        The input is read lazily, so a huge iterable never becomes a huge number of tasks. One item's failure
        never cancels another. With ``return_exceptions=True`` a failed item's slot holds its exception;
        otherwise, once every submitted item has finished (no paid task is abandoned), a :class:`BatchError`
        carrying every slot is raised if any item failed.

        With a journal, running the same batch again resumes it: nothing already submitted is submitted again.
        ``download_to`` saves each video into that folder as soon as it completes. ``on_event`` sees every
        item's steps (:class:`ItemEvent`). ``timeout`` bounds each item's wait after its submit.

        ``max_spend`` caps this batch's spending in US dollars (the client's own cap applies too): an item whose
        estimated cost would take the spend committed so far (charged or estimated, running tasks included) past
        it is not sent, nor is any item after it; they fail with :class:`NotSubmittedError` caused by
        :class:`BudgetExceededError`. Under a cap the input is read at once, and a batch with an item that has no
        price is refused before anything is sent (:class:`InvalidRequestError`)."""
        self._require_open()
        cap, items = self._batch_cap(items, max_spend)
        results: dict[int, Outcome] = {}
        await self._run_batch(
            items, results.__setitem__, download_to=download_to, on_event=on_event, timeout=timeout, cap=cap
        )
        ordered: list[Generation | HailuoError] = [results[i] for i in range(len(results))]
        if not return_exceptions and any(isinstance(r, BaseException) for r in ordered):
            raise BatchError(ordered)
        return ordered

    async def as_completed(
        self,
        items: Iterable[ItemInput],
        *,
        download_to: str | os.PathLike[str] | None = None,
        on_event: EventCallback | None = None,
        timeout: float | Unset | None = UNSET,
        max_spend: float | None = None,
    ) -> AsyncGenerator[tuple[int, Generation | HailuoError], None]:
        """Like :meth:`gather_generations`, yielding ``(index, outcome)`` as each item finishes.

        Leaving the loop early stops submitting and stops polling this batch (use ``contextlib.aclosing`` to
        make that immediate). A batch refused under ``max_spend`` (an item without a price) raises its
        :class:`InvalidRequestError` from the first iteration."""
        running = self._open_parts()
        cap, items = self._batch_cap(items, max_spend)

        async def run(sink: Callable[[int, Outcome], None]) -> None:
            await self._run_batch(items, sink, download_to=download_to, on_event=on_event, timeout=timeout, cap=cap)

        async with contextlib.aclosing(stream_outcomes(running.tasks, run)) as outcomes:
            async for pair in outcomes:
                yield pair

    async def _run_batch(
        self,
        items: Iterable[ItemInput],
        sink: Callable[[int, Outcome], None],
        *,
        download_to: str | os.PathLike[str] | None,
        on_event: EventCallback | None,
        timeout: float | Unset | None,
        cap: SpendCap | None,
    ) -> None:
        running = self._open_parts()
        deadline = self.poll.deadline if isinstance(timeout, Unset) else timeout
        folder = None if download_to is None else await anyio.to_thread.run_sync(check_destination, download_to)
        with self._parts.closing.watch() as closing:
            await running.batches.run(
                items, sink, download_to=folder, on_event=on_event, deadline=deadline, closing=closing, cap=cap
            )

    def _batch_cap(
        self, items: Iterable[ItemInput], max_spend: float | None
    ) -> tuple[SpendCap | None, Iterable[ItemInput]]:
        """The batch's cap, and its items (read at once when any cap applies: see :func:`priced_items`)."""
        cap = None if max_spend is None else SpendCap(max_spend)
        ledger = self._parts.ledger
        return cap, priced_items(items, self.provider, ledger, ledger.caps(cap))
