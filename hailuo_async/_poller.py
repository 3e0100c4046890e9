"""The one shared poller: a single loop that checks every outstanding task of a client.

Data flow: the client hands each submitted task to :meth:`Poller.track`; the loop takes a token from the
:class:`~hailuo_async._pacer.RequestPacer` for every due check, a fixed pool of workers sends it through the
transport, the provider codec parses the answer, and the outcome reaches the task's callbacks. What each answer
teaches about when tasks finish is kept by the forecaster (:mod:`._forecast`); this module only schedules, sends
and resolves.

Tasks wait in two heaps ordered by their next check (O(log n) per check, whatever the number outstanding): checks
aimed at a predicted finish, served first, and routine ones (first looks, intermediate readings, retries). Each task
is checked as few times as possible. Its first look comes when only the fastest few percent of tasks like it are
done (learned from the batch: a few early "probe" tasks, apimart's ``estimated_time``, other tasks' progress,
finished tasks). From then on its next check is aimed just after its predicted finish: two progress readings give
the task's line; one reading gives it too once "scout" tasks have measured how long tasks queue before progress
starts; else the provider's estimate, else the batch's typical duration. When the finish is still uncertain, an
intermediate reading comes first. The loop wakes on a coarse grid so that checks due together go out together. A
429 pauses the whole client through the pacer; one task's error never stops the loop; a task past its deadline gets
:class:`GenerationTimeoutError` and is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable

import anyio
import anyio.abc

from ._clock import Clock
from ._config import PollPolicy, RetryPolicy
from ._exceptions import (
    DecodeError,
    GenerationFailedError,
    GenerationTimeoutError,
    HailuoError,
    RateLimitError,
)
from ._forecast import BatchModel, finished_duration, observe
from ._http import redact
from ._models import Generation, Task, TaskState, TaskStatus
from ._planner import Entry, Planner
from ._retry import Retrier, is_retryable, retry_delay
from ._sender import PacedSender
from .providers import Provider, map_status_word

__all__ = ["Outcome", "Poller"]


logger = logging.getLogger("hailuo_async")

Outcome = Generation | HailuoError
Callback = Callable[[Outcome], None]


class Poller:
    """Checks the status of every tracked task; resolves each task's callbacks with its outcome."""

    TICK = 0.1
    """Seconds of the grid the loop wakes on: checks due within one tick go out together."""
    UNDECODABLE_LIMIT = 5
    """Status answers in a row that cannot be decoded after which a task fails with :class:`DecodeError` (its id
    attached, so the paid task can be recovered) instead of being polled until its deadline."""

    def __init__(
        self,
        *,
        provider: Provider,
        sender: PacedSender,
        policy: PollPolicy,
        retry: RetryPolicy,
        clock: Clock,
    ) -> None:
        self.provider = provider
        self.sender = sender
        self.policy = policy
        self.retry = retry
        self.clock = clock
        self._entries: dict[str, Entry] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # urgent checks: aimed at a predicted finish
        self._routine: list[tuple[float, int, str, int]] = []  # first looks, intermediate readings, retries
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._model = BatchModel()
        self._planner = Planner(policy, self._model)
        self._retrier = Retrier(retry, clock=clock)
        self._unknown_words: set[str] = set()
        self.errors = 0

    # -- public -------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def status_requests(self) -> int:
        """Status checks sent so far."""
        return self.sender.by_route["status"]

    def track(
        self,
        task: Task,
        callback: Callback,
        *,
        deadline: float | None,
        first_check: float | None = None,
        listener: Callable[[TaskStatus], None] | None = None,
    ) -> None:
        """Poll ``task`` until it ends, then call ``callback`` once with a :class:`Generation` or an error.

        ``deadline`` is in seconds from now (``None``: never give up). ``listener`` sees every status answer
        until then (progress displays)."""
        now = self.clock.monotonic()
        entry = self._entries.get(task.task_id)
        limit = None if deadline is None else now + deadline
        if entry is None:
            started = now - max(0.0, self.clock.time() - task.submitted_at)
            entry = self._entries[task.task_id] = Entry(task, started, limit)
            delay = self.policy.first_check if first_check is None else first_check
            self._schedule(entry, now + delay)
        elif entry.deadline is not None and (limit is None or limit > entry.deadline):
            entry.deadline = limit
        entry.callbacks.append(callback)
        if listener is not None:
            entry.listener = listener

    def untrack(self, task_id: str, callback: Callback | None = None) -> None:
        """Forget ``callback`` (or every callback) of ``task_id``; polling stops once nobody waits."""
        entry = self._entries.get(task_id)
        if entry is None:
            return
        if callback is not None and callback in entry.callbacks:
            entry.callbacks.remove(callback)
        if callback is None or not entry.callbacks:
            del self._entries[task_id]

    async def run(self) -> None:
        """The polling loop; runs until cancelled (the client's task group owns it).

        The loop takes the pacer's token itself, then hands the most urgent due check to a free worker: checks
        aimed at a predicted finish go before first looks and intermediate readings, so when the provider's
        rate limit leaves room for fewer checks than are due, the ones that decide detection lag go first."""
        send, receive = anyio.create_memory_object_stream[Entry](0)
        async with send, receive, anyio.create_task_group() as tg:
            for _ in range(self.policy.status_concurrency):
                tg.start_soon(self._worker, receive)
            while True:
                due = self._next_due()
                if due is not None:
                    # Wake on a coarse grid: checks due within one tick go out together, so the process wakes
                    # once for them all instead of once each (the cost of a wake-up dwarfs that of a check).
                    timeout = None
                    if due != math.inf:
                        timeout = math.ceil(due / self.TICK) * self.TICK - self.clock.monotonic()
                    await self.clock.wait(self._reset_wake(), timeout)
                    continue
                await self.sender.acquire()
                entry = self._pop_due()
                if entry is not None:
                    await send.send(entry)  # waits for a free worker: backpressure, not a pile of tasks

    async def _worker(self, entries: anyio.abc.ObjectReceiveStream[Entry]) -> None:
        async for entry in entries:
            await self._check_guarded(entry)

    def _reset_wake(self) -> anyio.Event:
        self._wake = anyio.Event()
        return self._wake

    # -- scheduling ---------------------------------------------------------------------------------------

    def _schedule(self, entry: Entry, when: float) -> None:
        entry.version += 1
        heap = self._heap if entry.urgent else self._routine
        wake = (not self._heap or when < self._heap[0][0]) and (not self._routine or when < self._routine[0][0])
        heapq.heappush(heap, (when, next(self._seq), entry.task.task_id, entry.version))
        if wake:
            self._wake.set()

    def _top(self, heap: list[tuple[float, int, str, int]]) -> float:
        """When the first live entry of ``heap`` is due (``inf`` if none), dropping stale ones on the way."""
        while heap:
            due, _, task_id, version = heap[0]
            entry = self._entries.get(task_id)
            if entry is None or entry.version != version:
                heapq.heappop(heap)  # stale: rescheduled or resolved since
                continue
            return due
        return math.inf

    def _next_due(self) -> float | None:
        """``None`` when a check is due now; else when the next one will be (``inf``: nothing scheduled).
        First looks that come due are first asked whether the batch says to wait (no token needed for that)."""
        now = self.clock.monotonic()
        while True:
            urgent, routine = self._top(self._heap), self._top(self._routine)
            if urgent <= now:
                return None
            if routine > now:
                return min(urgent, routine)
            _, _, task_id, _ = self._routine[0]
            entry = self._entries[task_id]
            if entry.checks or entry.cleared or self._first_look_now(entry, now):
                entry.cleared = True
                return None
            # deferred: _first_look_now put it back

    def _pop_due(self) -> Entry | None:
        """The most urgent due entry, marked in flight; ``None`` if what was due is gone meanwhile."""
        now = self.clock.monotonic()
        for heap in (self._heap, self._routine):
            if self._top(heap) <= now:
                _, _, task_id, _ = heapq.heappop(heap)
                entry = self._entries[task_id]
                entry.version += 1  # in flight: nothing else may fire it
                return entry
        return None

    def _first_look_now(self, entry: Entry, now: float) -> bool:
        """Whether to check a task for the first time now; if not, it is put back to be asked again later."""
        wait = self._planner.first_look_wait(entry, now)
        if wait <= 0:
            return True
        self._schedule(entry, self._capped(entry, now + wait))
        return False

    def _plan(self, entry: Entry, now: float) -> float:
        """Seconds until the next check of a task that is still going."""
        return self._planner.next_check(entry, now, len(self._entries))

    def _replan(self, now: float) -> None:
        """The model has just learned to read single progress readings: plan anew the tasks read before."""
        planner = self._planner
        waiting, planner.unplanned = planner.unplanned, []
        for entry in waiting:
            entry.unplanned = False
            if self._entries.get(entry.task.task_id) is entry:
                # An entry being checked right now is rescheduled again when its answer comes: harmless.
                self._schedule(entry, self._capped(entry, now + self._plan(entry, now)))

    def _learn(self, entry: Entry, now: float) -> None:
        """A task finished: remember how long it took."""
        self._model.durations.add(finished_duration(entry, self._model, now - entry.started, entry.last_seen))

    # -- one check ----------------------------------------------------------------------------------------

    async def _check_guarded(self, entry: Entry) -> None:
        try:
            await self._check(entry)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # a bug must not kill the loop; the waiter gets the error
            logger.exception("hailuo_async: unexpected error while polling task %s", entry.task.task_id)
            self._resolve(entry, exc if isinstance(exc, HailuoError) else _internal_error(exc))

    async def _check(self, entry: Entry) -> None:
        task = entry.task
        if self._entries.get(task.task_id) is not entry:
            return
        request = entry.request
        if request is None:
            request = entry.request = self.provider.build_status(task.task_id)
        try:
            status = await self.sender.call(request, self.provider.parse_status, paced=True)
        except RateLimitError as exc:
            self._after_failure(entry, exc, floor=exc.retry_after or self.retry.rate_limit_default)
            return
        except DecodeError as exc:
            entry.undecodable += 1
            if entry.undecodable >= self.UNDECODABLE_LIMIT:
                self._resolve(entry, self._undecodable(entry, exc))
            else:
                self._after_failure(entry, exc)
            return
        except HailuoError as exc:
            if is_retryable(exc):
                self._after_failure(entry, exc)
                return
            self._resolve(entry, exc)  # the provider refuses to tell (401, 404, ...): give up on this one
            return
        entry.errors = entry.undecodable = 0
        entry.checks += 1
        now = self.clock.monotonic()
        self._note_status(entry, status)
        if observe(entry, self._model, status, now - entry.started):
            self._replan(now)
        if status.state is TaskState.COMPLETED:
            await self._complete(entry, status, now)
        elif status.state is TaskState.FAILED:
            self._learn(entry, now)
            self._resolve(
                entry,
                GenerationFailedError(
                    redact(status.error or "task failed"),
                    provider=self.provider.name,
                    task_id=task.task_id,
                    code=status.error_code,
                ),
            )
        elif not self._past_deadline(entry, now):
            self._schedule(entry, self._capped(entry, now + self._plan(entry, now)))
        entry.last_seen = now - entry.started

    def _note_status(self, entry: Entry, status: TaskStatus) -> None:
        word = status.provider_status
        if word and map_status_word(word) is None and word not in self._unknown_words:
            self._unknown_words.add(word)
            logger.warning("hailuo_async: %s sent unknown status %r; still polling", self.provider.name, word)
        entry.state = status.state
        if entry.listener is not None:
            entry.listener(status)

    async def _complete(self, entry: Entry, status: TaskStatus, now: float) -> None:
        task = entry.task
        url, expires = status.video_url, status.expires_at
        if url is None and status.file_id is not None:
            try:
                url, expires = await self.fetch_url(status.file_id)
            except HailuoError as exc:
                if is_retryable(exc) and not self._past_deadline(entry, now):
                    self._after_failure(entry, exc)
                else:
                    self._resolve(entry, exc)
                return
        self._learn(entry, now)
        self._resolve(
            entry,
            Generation(
                provider=task.provider,
                task_id=task.task_id,
                request=task.request,
                video_url=url or "",
                expires_at=expires,
                submitted_at=task.submitted_at,
                completed_at=self.clock.time(),
                **status.provider_facts(),
            ),
        )

    async def fetch_url(self, file_id: str) -> tuple[str, float | None]:
        """Turn a finished task's file id into its video URL (MiniMax files/retrieve), with retries."""
        request = self.provider.build_fetch(file_id)
        return await self._retrier(lambda: self.sender.call(request, self.provider.parse_fetch))

    def _undecodable(self, entry: Entry, last: DecodeError) -> DecodeError:
        task_id = entry.task.task_id
        error = DecodeError(
            f"{self.provider.name}: {entry.undecodable} status answers in a row for task {task_id} could not be "
            f"read; the task may still finish: look it up by its id",
            provider=self.provider.name,
            snippet=last.snippet,
            task_id=task_id,
        )
        error.__cause__ = last
        return error

    def _after_failure(self, entry: Entry, exc: HailuoError, *, floor: float = 0.0) -> None:
        self.errors += 1
        entry.errors += 1
        now = self.clock.monotonic()
        if self._past_deadline(entry, now, cause=exc):
            return
        logger.info("hailuo_async: status check of %s failed (%s); retrying", entry.task.task_id, type(exc).__name__)
        delay = min(self.policy.max_interval, retry_delay(entry.errors - 1, self.retry, floor))
        self._schedule(entry, self._capped(entry, now + max(delay, floor)))

    @staticmethod
    def _capped(entry: Entry, when: float) -> float:
        # The last check happens at the deadline itself, so a timeout is reported on time.
        return when if entry.deadline is None else min(when, entry.deadline)

    def _past_deadline(self, entry: Entry, now: float, *, cause: BaseException | None = None) -> bool:
        if entry.deadline is None or now < entry.deadline:
            return False
        error = GenerationTimeoutError(
            provider=self.provider.name, task_id=entry.task.task_id, waited=now - entry.started
        )
        if cause is not None:
            error.__cause__ = cause
        self._resolve(entry, error)
        return True

    def _resolve(self, entry: Entry, outcome: Outcome) -> None:
        if self._entries.get(entry.task.task_id) is entry:
            del self._entries[entry.task.task_id]
        for callback in entry.callbacks:
            try:
                callback(outcome)
            except Exception:
                logger.exception("hailuo_async: result callback failed for task %s", entry.task.task_id)
        entry.callbacks.clear()


def _internal_error(exc: Exception) -> HailuoError:
    error = HailuoError(f"internal error while polling: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
