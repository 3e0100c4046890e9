"""The parts of one :class:`~hailuo_async.HailuoClient`, built from its options and wired together.

Data flow: the client's options (:class:`Settings`, read from the client itself) -> :class:`Parts`, made with the
client (no event loop needed), in the order a request meets them: the transport (:mod:`._transport`, wrapped by
:mod:`._record` when recording) -> the pacer (:mod:`._pacer`) -> the one paced call path (:mod:`._sender`) -> the
money-safe submitter (:mod:`._submit`), which records to the journal book (:mod:`._resume`) and holds costs in the
ledger (:mod:`._ledger`). When the client opens, :meth:`Parts.open` opens the transport and the journal and makes
what lives while it is open (:class:`Running`): the shared poller (:mod:`._poller`) and its task, the frame
resolver (:mod:`._images`), the downloader (:mod:`._download`) and the batch runner (:mod:`._batch`).
:meth:`Parts.submit` is the one submit path of single submits and batches; :meth:`Parts.statistics` gathers the
counters of every part.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc

from ._batch import BatchRunner, Closing, Download, over_budget
from ._clock import Clock
from ._config import PollPolicy, RetryPolicy, Timeouts, resolve_api_key
from ._download import Downloader
from ._exceptions import BudgetExceededError, HailuoError, NotSubmittedError
from ._images import FrameResolver
from ._journal import Journal
from ._ledger import Ledger, SpendCap
from ._models import ClientStatistics, Generation, GenerationRequest, Task
from ._pacer import RequestPacer
from ._poller import Outcome, Poller
from ._record import RecordingTransport
from ._resume import JournalBook, Plan
from ._retry import Retrier
from ._sender import PacedSender
from ._submit import Submitter
from ._transport import AiohttpTransport, Transport
from ._webhook import Webhook, WebhookReceiver, WebhookServer
from .providers import Provider, WebhookEvent

__all__ = ["Counters", "Parts", "Running", "Settings"]

logger = logging.getLogger("hailuo_async")


class Settings(Protocol):
    """What the parts read of the client's options: the :class:`~hailuo_async.HailuoClient` attributes of the same
    names, checked by the client."""

    provider: Provider
    base_url: str
    clock: Clock
    max_concurrency: int
    requests_per_second: float | None
    submits_per_minute: float | None
    timeouts: Timeouts
    poll: PollPolicy
    retry: RetryPolicy
    journal_path: Path | None
    resubmit_uncertain: bool
    download_concurrency: int
    max_download_bytes: int
    webhook: Webhook | None


class Counters:
    """What the client counts itself (the other statistics are the parts' own counters)."""

    __slots__ = ("completed", "downloads", "failed", "retries")

    def __init__(self) -> None:
        self.completed = self.failed = self.retries = self.downloads = 0

    def count_retry(self, exc: Exception, wait: float) -> None:
        self.retries += 1
        logger.info("hailuo_async: retrying in %.2fs after %s", wait, type(exc).__name__)

    def count_outcome(self, outcome: Outcome) -> None:
        if isinstance(outcome, Generation):
            self.completed += 1
        else:
            self.failed += 1


@dataclasses.dataclass(frozen=True, eq=False)
class Running:
    """The parts of an open client (:meth:`Parts.open`)."""

    poller: Poller
    frames: FrameResolver
    downloader: Downloader
    batches: BatchRunner
    tasks: anyio.abc.TaskGroup
    """Runs the poller's loop and :meth:`~hailuo_async.HailuoClient.as_completed`'s batches."""
    server: WebhookServer | None = None
    """Serves the webhook deliveries while the client is open (``Webhook.listen``)."""


def make_transport(
    settings: Settings,
    transport: Transport | None,
    *,
    api_key: str | None,
    record_to: str | os.PathLike[str] | None,
    allow_insecure_http: bool,
) -> Transport:
    """``transport``, else the real one with the key (from the environment when ``api_key`` is not given), its
    connection pools sized for the submits, status checks and downloads at once; wrapped by the recorder when
    ``record_to`` is set."""
    if transport is None:
        api_key = resolve_api_key(settings.provider.env_var, api_key)
        transport = AiohttpTransport(
            settings.base_url,
            api_key,
            timeouts=settings.timeouts,
            max_connections=max(settings.max_concurrency, settings.poll.status_concurrency)
            + settings.download_concurrency,
            allow_insecure_http=allow_insecure_http,
        )
    if record_to is not None:
        secrets = (api_key,) if api_key else ()
        transport = RecordingTransport(transport, record_to, provider=settings.provider.name, secrets=secrets)
    return transport


class Parts:
    """The parts that live as long as the client, wired together; :meth:`open` adds those of an open client."""

    def __init__(self, settings: Settings, transport: Transport, ledger: Ledger) -> None:
        self.provider = provider = settings.provider
        self.clock = clock = settings.clock
        self.transport = transport
        self.ledger = ledger
        self.counters = Counters()
        self.book = JournalBook(provider, clock, resubmit_uncertain=settings.resubmit_uncertain)
        per_minute = settings.submits_per_minute
        self.pacer = RequestPacer(
            clock,
            fixed_rate=settings.requests_per_second,
            submit_rate=None if per_minute is None else per_minute / 60.0,
        )
        self.sender = PacedSender(transport, self.pacer, rate_limit_default=settings.retry.rate_limit_default)
        self.submitter = Submitter(
            provider,
            self.sender,
            retry=settings.retry,
            timeouts=settings.timeouts,
            clock=clock,
            note=self.book.note,
            on_retry=self.counters.count_retry,
        )
        self.retrier = Retrier(settings.retry, clock=clock, on_retry=self.counters.count_retry)
        self.closing = Closing()
        self.poller: Poller | None = None  # the open client's
        self._tasks: anyio.abc.TaskGroup | None = None  # the open client's task group
        self.server: WebhookServer | None = None  # serves the deliveries while the client is open
        self.webhook = settings.webhook
        self.receiver = (
            None
            if settings.webhook is None
            else WebhookReceiver(provider, settings.webhook, on_event=self._delivered, clock=clock)
        )

    def _delivered(self, event: WebhookEvent) -> None:
        """A webhook delivery passed its checks: the poller takes the news (before the client opens: dropped); how
        a task the poller does not track ended (an earlier run's) goes into the journal, for resume."""
        poller, tasks = self.poller, self._tasks
        if poller is None or event.kind != "status" or poller.deliver(event.task_id, event.status):
            return
        if tasks is not None and event.task_id and event.status is not None and self.book.journal is not None:
            tasks.start_soon(self.book.record_delivery, event.task_id, event.status)

    async def open(self, settings: Settings, download: Download) -> Running:
        """Open the transport and the journal, make the parts of an open client and start the poller's loop;
        close what was opened if anything fails. ``download`` saves a batch item's video (the client's
        :meth:`~hailuo_async.HailuoClient.download`)."""
        slots = anyio.Semaphore(settings.max_concurrency)
        await self.transport.open()
        try:
            if settings.journal_path is not None:
                self.book.journal = await Journal.open(settings.journal_path)
            poller = Poller(
                provider=self.provider, sender=self.sender, policy=settings.poll, retry=settings.retry, clock=self.clock
            )
            frames = FrameResolver(self.provider, self.sender.send, settings.retry, clock=self.clock)
            downloader = Downloader(
                self.transport,
                retry=settings.retry,
                concurrency=settings.download_concurrency,
                max_bytes=settings.max_download_bytes,
                clock=self.clock,
            )
            batches = BatchRunner(
                provider=self.provider,
                poller=poller,
                book=self.book,
                submit=functools.partial(self.submit, frames),
                download=download,
                slots=slots,
                clock=self.clock,
                count_outcome=self.counters.count_outcome,
                settle=self.ledger.settle,
            )
            server = await self._listen(poller)
            tasks = anyio.create_task_group()
            await tasks.__aenter__()
            self._tasks = tasks
            tasks.start_soon(poller.run)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if self.server is not None:
                    await self.server.close()
            await self._close_resources()
            raise
        return Running(poller=poller, frames=frames, downloader=downloader, batches=batches, tasks=tasks, server=server)

    async def _listen(self, poller: Poller) -> WebhookServer | None:
        """With a webhook: start serving deliveries (``listen``) before anything is submitted, so that MiniMax's
        challenge is answered before a submit needs it; every submit then carries the callback URL."""
        self.poller = poller
        if self.receiver is None or self.webhook is None:
            return None
        poller.webhook_lag = self.webhook.fallback_lag
        base_url = None
        if self.webhook.listen is not None:
            self.server = WebhookServer(self.receiver)
            base_url = await self.server.start()
        self.submitter.callback_url = self.receiver.callback_url(base_url)
        return self.server

    async def close(self, running: Running) -> None:
        """Drop the queued submits (a POST on the wire is answered and recorded), stop the poller, then close the
        journal and the transport."""
        try:
            with anyio.CancelScope(shield=True):
                await self.closing.close()
            self._tasks = None  # deliveries from now on are not recorded
            running.tasks.cancel_scope.cancel()
            await running.tasks.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    if running.server is not None:
                        await running.server.close()
                finally:
                    self.poller = self._tasks = None
                    await self._close_resources()

    async def _close_resources(self) -> None:
        try:
            if self.book.journal is not None:
                await self.book.journal.aclose()
        finally:
            await self.transport.aclose()

    async def submit(
        self,
        frames: FrameResolver,
        request: GenerationRequest,
        plan: Plan,
        stopped: Callable[[], HailuoError | None] | None = None,
        cap: SpendCap | None = None,
    ) -> Task:
        """Resolve local frames, then submit under the money-safety rules (:mod:`._submit`) as ``plan`` says.
        ``stopped`` tells whether the batch stopped meanwhile (then nothing is sent); the item's estimated cost is
        held against the client's cap and ``cap`` (the batch's) right before the POST."""
        resolved = await frames.resolve(request)
        fatal = stopped() if stopped is not None else None
        if fatal is not None:
            raise NotSubmittedError("the batch stopped before this item was sent") from fatal
        caps = self.ledger.caps(cap)
        try:
            self.ledger.check(request, caps)  # over a cap already: fail now rather than after the pacer's wait
            task = await self.submitter.submit(
                request,
                resolved,
                key=plan.key,
                journal_item=plan.item,
                look_up_first=plan.look_up_first,
                reserve=lambda: self.ledger.reserve(request, caps),
            )
        except BudgetExceededError as exc:
            raise over_budget(exc) from exc
        if self.submitter.callback_url is not None and self.poller is not None:
            self.poller.hooked(task.task_id)
        return task

    def statistics(self, running: Running | None) -> ClientStatistics:
        """A frozen snapshot of every part's counters (``running``: ``None`` before the client was opened)."""
        c = self.counters
        poller = None if running is None else running.poller
        spent, estimated, unpriced = self.ledger.spent()
        return ClientStatistics(
            submitting=self.submitter.submitting,
            submitted=self.submitter.submitted,
            polling=len(poller) if poller is not None else 0,
            completed=c.completed,
            failed=c.failed,
            uncertain=self.submitter.uncertain,
            requests=self.sender.requests,
            status_requests=self.sender.by_route["status"],
            retries=c.retries + (poller.errors if poller is not None else 0),
            rate_limited=self.pacer.rate_limited,
            uploads=running.frames.uploads if running is not None else 0,
            downloads=c.downloads,
            rate_limit=self.pacer.current_rate,
            spent=spent,
            spent_estimated=estimated,
            unpriced=unpriced,
            max_spend=None if self.ledger.cap is None else self.ledger.cap.usd,
        )
