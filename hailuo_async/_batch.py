"""Batches: many items through one client, each submitted (or resumed from the journal), polled, saved and
reported on its own, so that one item's failure never touches another.

Data flow: :meth:`HailuoClient.gather_generations` / :meth:`~HailuoClient.as_completed` -> :meth:`BatchRunner.run`
reads the input lazily under the concurrency bound -> per item: validation -> :meth:`JournalBook.plan` (the resume
rules: finished earlier, already submitted, maybe sent, new) -> the client's money-safe submit (:mod:`._submit`)
-> :meth:`Poller.track` -> :meth:`BatchRunner._settle` (journal record, download, :class:`ItemEvent`, outcome).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec

from ._clock import Clock
from ._exceptions import (
    AuthenticationError,
    BudgetExceededError,
    DownloadError,
    GenerationTimeoutError,
    HailuoError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotSubmittedError,
)
from ._ledger import Ledger, SpendCap
from ._models import EventKind, Generation, GenerationRequest, ItemEvent, Task, TaskState, TaskStatus
from ._poller import Outcome, Poller
from ._resume import JournalBook, Plan
from .providers import Provider

__all__ = [
    "BatchRunner",
    "Closing",
    "EventCallback",
    "ItemInput",
    "JournalBook",
    "not_submitted",
    "over_budget",
    "priced_items",
    "stream_outcomes",
    "to_request",
]

logger = logging.getLogger("hailuo_async")

ItemInput = str | GenerationRequest
"""What a batch accepts per item: a prompt or a full request."""

EventCallback = Callable[[ItemEvent], object]

FATAL = (AuthenticationError, InsufficientBalanceError)
"""Submit errors that stop a batch: nothing more can succeed with this key."""


def to_request(item: object, options: dict[str, Any]) -> GenerationRequest:
    """``item`` (a prompt or a request) as a :class:`GenerationRequest` with ``options`` applied."""
    if isinstance(item, GenerationRequest):
        return msgspec.structs.replace(item, **options) if options else item
    if isinstance(item, str):
        return GenerationRequest(item, **options)
    raise InvalidRequestError("item", type(item).__name__, "a prompt string or a GenerationRequest")


def not_submitted(cause: HailuoError) -> NotSubmittedError:
    """The error of an item that was never sent because of ``cause``."""
    error = NotSubmittedError(f"not submitted: the batch stopped after {type(cause).__name__}: {cause}")
    error.__cause__ = cause
    return error


def over_budget(cause: BudgetExceededError) -> NotSubmittedError:
    """The error of the item whose estimated cost would have passed a spending cap: it was not sent."""
    error = NotSubmittedError(f"not submitted: {cause}")
    error.__cause__ = cause
    return error


def emit(callback: EventCallback | None, event: ItemEvent) -> None:
    """Hand ``event`` to the user's callback; a failing callback is logged, never raised into the batch."""
    if callback is None:
        return
    try:
        callback(event)
    except Exception:
        logger.exception("hailuo_async: on_event callback failed")


class _StatusEvents:
    """Turns one task's status answers into queued/running events, once per change of state or progress."""

    __slots__ = ("callback", "index", "last", "task_id")

    def __init__(self, callback: EventCallback, index: int | None, task_id: str) -> None:
        self.callback = callback
        self.index = index
        self.task_id = task_id
        self.last: tuple[TaskState, int | None] | None = None

    def __call__(self, status: TaskStatus) -> None:
        seen = (status.state, status.progress)
        if status.state.terminal or self.last == seen:
            return
        self.last = seen
        kind: EventKind = "queued" if status.state is TaskState.QUEUED else "running"
        emit(self.callback, ItemEvent(index=self.index, kind=kind, task_id=self.task_id, progress=status.progress))


Submit = Callable[[GenerationRequest, Plan, Callable[[], HailuoError | None], SpendCap | None], Awaitable[Task]]
"""The client's money-safe submit: ``submit(request, plan, stopped, cap)``; ``stopped`` says whether the batch
stopped (then nothing is sent), ``cap`` is the batch's own spending cap, if any (the client's applies too)."""

Download = Callable[[Generation, Path, int], Awaitable[Generation]]


class Batch:
    """Bookkeeping of one gather/as_completed run."""

    def __init__(
        self,
        sink: Callable[[int, Outcome], None],
        tg: anyio.abc.TaskGroup,
        on_event: EventCallback | None,
        download_to: Path | None,
        deadline: float | None,
        cap: SpendCap | None = None,
    ) -> None:
        self.sink = sink
        self.cap = cap
        self.tg = tg
        self.on_event = on_event
        self.download_to = download_to
        self.deadline = deadline
        self.fatal: HailuoError | None = None
        self.pending = 0
        self.produced_all = False
        self.done = anyio.Event()
        self.open = True
        self.task_ids: set[str] = set()
        self.occurrences: dict[str, int] = {}
        self.unfinished: dict[int, Task | None] = {}  # items handed to a submit, with their task once accepted

    def stopped_by(self) -> HailuoError | None:
        """The fatal error that stopped submitting, if any (may change across awaits)."""
        return self.fatal

    def finish(self, index: int, outcome: Outcome) -> None:
        self.unfinished.pop(index, None)
        self.sink(index, outcome)
        self.pending -= 1
        if self.produced_all and self.pending == 0:
            self.done.set()


class BatchRunner:
    """Runs batches for one open client. ``count_outcome`` feeds the client's statistics; ``settle`` records a
    task's end in the client's spending and returns the outcome to report (with its estimated cost)."""

    def __init__(
        self,
        *,
        provider: Provider,
        poller: Poller,
        book: JournalBook,
        submit: Submit,
        download: Download,
        slots: anyio.Semaphore,
        clock: Clock,
        count_outcome: Callable[[Outcome], None],
        settle: Callable[[Outcome], Outcome] = lambda outcome: outcome,
    ) -> None:
        self.provider = provider
        self.poller = poller
        self.book = book
        self.submit = submit
        self.download = download
        self.slots = slots
        self.clock = clock
        self.count_outcome = count_outcome
        self.settle = settle

    async def run(
        self,
        items: Iterable[ItemInput],
        sink: Callable[[int, Outcome], None],
        *,
        download_to: Path | None,
        on_event: EventCallback | None,
        deadline: float | None,
        closing: anyio.CancelScope,
        cap: SpendCap | None = None,
    ) -> None:
        """Run every item of ``items`` to its outcome, handed to ``sink(index, outcome)``. ``closing`` is the
        scope the client cancels when it closes: then every item without an outcome gets one (:meth:`_abandon`).
        ``cap``: the batch's spending cap; the first item that would pass it stops submitting, as a fatal error
        does."""
        batch: Batch | None = None
        try:
            with closing:
                async with anyio.create_task_group() as tg:
                    batch = Batch(sink, tg, on_event, download_to, deadline, cap)
                    try:
                        await self._produce(batch, items)
                    finally:
                        batch.open = False  # from here on, late results and late submits are not taken in
        finally:
            if batch is not None:
                for task_id in batch.task_ids:
                    self.poller.untrack(task_id)
        if closing.cancelled_caught and batch is not None:
            self._abandon(batch)

    def _abandon(self, batch: Batch) -> None:
        """The client closed during the batch: items that never left are :class:`NotSubmittedError`; submitted
        ones :class:`GenerationTimeoutError` (the task keeps running and can be waited on again by its id)."""
        closed = HailuoError("the client was closed during the batch")
        now = self.clock.time()
        for index, task in sorted(batch.unfinished.items()):
            if task is None:
                outcome: HailuoError = not_submitted(closed)
            else:
                outcome = GenerationTimeoutError(
                    provider=task.provider, task_id=task.task_id, waited=now - task.submitted_at
                )
                outcome.__cause__ = closed
            self._finish(batch, index, outcome)

    def _finish(self, batch: Batch, index: int, outcome: Outcome) -> None:
        self.count_outcome(outcome)
        if isinstance(outcome, BaseException):
            emit(batch.on_event, ItemEvent(index=index, kind="failed", error=outcome))
        batch.finish(index, outcome)

    async def _produce(self, batch: Batch, items: Iterable[ItemInput]) -> None:
        """Read the input lazily, spawn one submit per item under the concurrency bound, wait for every outcome."""
        for index, item in enumerate(items):
            batch.pending += 1
            try:
                request = to_request(item, {})
                self.provider.validate(request)
            except InvalidRequestError as exc:
                self._finish(batch, index, exc)
                continue
            if batch.fatal is not None:
                self._finish(batch, index, not_submitted(batch.fatal))
                continue
            await self.slots.acquire()  # backpressure before spawning: at most max_concurrency submitting
            fatal = batch.stopped_by()  # another item may have hit a fatal error while we waited
            if fatal is not None:
                self.slots.release()
                self._finish(batch, index, not_submitted(fatal))
                continue
            batch.unfinished[index] = None
            batch.tg.start_soon(self._run_item, batch, index, request)
        batch.produced_all = True
        if batch.pending == 0:
            batch.done.set()
        await batch.done.wait()

    async def _run_item(self, batch: Batch, index: int, request: GenerationRequest) -> None:
        emit(batch.on_event, ItemEvent(index=index, kind="submitting"))
        try:
            plan = self.book.plan(request, index, batch.occurrences)
            task = plan.task
            if plan.outcome is None and task is None:
                task = await self._submit(batch, request, plan)
        except HailuoError as exc:
            self._finish(batch, index, exc)
            return
        finally:
            self.slots.release()  # the submit is over, whatever happened: let the next item in
        if plan.outcome is not None:  # finished in an earlier run
            batch.tg.start_soon(self._settle, batch, index, plan.outcome, None)
            return
        assert task is not None
        emit(batch.on_event, ItemEvent(index=index, kind="submitted", task_id=task.task_id))
        batch.unfinished[index] = task
        if not batch.open:  # the batch was cancelled while this submit was finishing
            logger.warning("hailuo_async: task %s was accepted as its batch stopped; not polled", task.task_id)
            return
        batch.task_ids.add(task.task_id)
        listener = None if batch.on_event is None else _StatusEvents(batch.on_event, index, task.task_id)
        self.poller.track(task, _ItemDone(self, batch, index, task), deadline=batch.deadline, listener=listener)

    async def _submit(self, batch: Batch, request: GenerationRequest, plan: Plan) -> Task:
        try:
            return await self.submit(request, plan, batch.stopped_by, batch.cap)
        except FATAL as exc:
            if batch.fatal is None:
                batch.fatal = exc
            raise
        except NotSubmittedError as exc:
            if isinstance(exc.__cause__, BudgetExceededError) and batch.fatal is None:
                batch.fatal = exc.__cause__  # over a cap: stop submitting, as after a fatal error
            raise

    async def _settle(self, batch: Batch, index: int, outcome: Outcome, task: Task | None) -> None:
        """Record an item's outcome, save its video if asked, report it."""
        if isinstance(outcome, Generation):
            emit(batch.on_event, ItemEvent(index=index, kind="completed", task_id=outcome.task_id, generation=outcome))
            await self.book.record_completed(outcome, index)
            if batch.download_to is not None and not (outcome.path and await anyio.Path(outcome.path).is_file()):
                try:
                    outcome = await self.download(outcome, batch.download_to, index)
                except HailuoError as exc:
                    error = DownloadError(
                        f"task {outcome.task_id} finished but its video could not be saved: {exc}", generation=outcome
                    )
                    error.__cause__ = exc
                    self._finish(batch, index, error)
                    return
                await self.book.record_completed(outcome, index)
                emit(
                    batch.on_event,
                    ItemEvent(index=index, kind="downloaded", task_id=outcome.task_id, generation=outcome),
                )
        elif task is not None:
            await self.book.record_failure(task, outcome)
        self._finish(batch, index, outcome)


class _ItemDone:
    """The poller's callback for one batch item: settle its outcome in the batch's task group.

    A slotted object rather than a closure: one is held per outstanding task, and a closure over four names takes
    five objects (about 310 bytes against 64), which counts at 100,000 tasks."""

    __slots__ = ("batch", "index", "runner", "task")

    def __init__(self, runner: BatchRunner, batch: Batch, index: int, task: Task) -> None:
        self.runner = runner
        self.batch = batch
        self.index = index
        self.task = task

    def __call__(self, outcome: Outcome) -> None:
        outcome = self.runner.settle(outcome)
        if self.batch.open:
            self.batch.tg.start_soon(self.runner._settle, self.batch, self.index, outcome, self.task)


class Closing:
    """The client's work that must stop when it closes (batches, single submits), and a way to wait for it.

    :meth:`aclose` cancels every guarded scope, so an item still waiting for a token or a submit slot is dropped
    at once, then waits until each has unwound (a POST already on the wire finishes and is recorded)."""

    def __init__(self) -> None:
        self._open: dict[anyio.CancelScope, anyio.Event] = {}

    @contextlib.contextmanager
    def watch(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope for the caller to enter around its work; closing the client cancels it."""
        scope = anyio.CancelScope()
        unwound = self._open[scope] = anyio.Event()
        try:
            yield scope
        finally:
            del self._open[scope]
            unwound.set()

    async def close(self) -> None:
        for scope in list(self._open):
            scope.cancel()
        for unwound in list(self._open.values()):
            await unwound.wait()


async def stream_outcomes(
    tg: anyio.abc.TaskGroup, run: Callable[[Callable[[int, Outcome], None]], Awaitable[None]]
) -> AsyncGenerator[tuple[int, Outcome], None]:
    """``(index, outcome)`` pairs as ``run(sink)`` produces them, ``run`` running in ``tg``. Leaving the loop
    early cancels ``run`` and waits for it to unwind (a POST on the wire finishes and is recorded); an error of
    ``run`` is raised to the consumer once the pairs before it are out."""
    send, receive = anyio.create_memory_object_stream[tuple[int, Outcome]](math.inf)
    scope = anyio.CancelScope()
    finished = anyio.Event()
    failure: list[BaseException] = []

    async def runner() -> None:
        try:
            with scope:
                await run(lambda index, outcome: send.send_nowait((index, outcome)))
        except Exception as exc:  # surfaced to the consumer below
            failure.append(exc)
        finally:
            send.close()
            finished.set()

    tg.start_soon(runner)
    try:
        async with receive:
            async for pair in receive:
                yield pair
        if failure:
            raise failure[0]
    finally:
        scope.cancel()
        with anyio.CancelScope(shield=True):
            await finished.wait()


def priced_items(
    items: Iterable[ItemInput], provider: Provider, ledger: Ledger, caps: Sequence[SpendCap]
) -> Iterable[ItemInput]:
    """``items`` as they are without a cap; under one, read at once, and refused (:class:`InvalidRequestError`)
    unless every valid item has a price, before anything is sent (items that are not valid fail on their own)."""
    if not caps:
        return items
    listed = list(items)
    valid: dict[int, GenerationRequest] = {}
    for index, item in enumerate(listed):
        try:
            request = to_request(item, {})
            provider.validate(request)
        except InvalidRequestError:
            continue
        valid[index] = request
    ledger.require_prices(valid, caps)
    return listed
