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
import random
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
from ._forecast import BatchModel, finished_duration, observe, predict
from ._http import HttpRequest, redact
from ._models import Generation, Task, TaskState, TaskStatus
from ._retry import Retrier, is_retryable, retry_delay
from ._sender import PacedSender
from .providers import Provider, map_status_word

__all__ = ["Outcome", "Poller"]


logger = logging.getLogger("hailuo_async")

Outcome = Generation | HailuoError
Callback = Callable[[Outcome], None]


class _Entry:
    __slots__ = (
        "callbacks",
        "checks",
        "cleared",
        "counted",
        "deadline",
        "deferrals",
        "errors",
        "eta",
        "evidence",
        "first_look",
        "last_seen",
        "line_waits",
        "listener",
        "measured",
        "probe",
        "progress0",
        "progress1",
        "request",
        "scout",
        "spread",
        "started",
        "state",
        "task",
        "time0",
        "time1",
        "undecodable",
        "unplanned",
        "urgent",
        "version",
    )

    def __init__(self, task: Task, started: float, deadline: float | None) -> None:
        self.task = task
        self.started = started
        self.deadline = deadline
        self.callbacks: list[Callback] = []
        self.listener: Callable[[TaskStatus], None] | None = None
        self.checks = 0
        self.cleared = False  # its first look was found due (no more deferring)
        self.urgent = False  # its next check is aimed at a predicted finish
        self.errors = 0
        self.undecodable = 0  # status answers in a row that could not be decoded
        self.deferrals = 0
        self.line_waits = 0
        self.first_look = math.inf  # seconds from submit to its planned first check
        self.evidence = 0  # how good the evidence behind first_look is (see _Model.first_look)
        self.last_seen = 0.0  # seconds from submit to the latest answered check
        self.spread = 1.0 - Poller.FIRST_SPREAD * random.random()  # where in the spread its first look falls
        self.version = 0
        self.scout = False
        self.probe = False
        self.counted = False  # this task's predicted duration is in the model's sample
        self.unplanned = False  # read before the model could turn one reading into a finish time
        self.measured = False  # this task's line has told the model its queueing share
        self.request: HttpRequest | None = None  # the status request, built once
        self.state = TaskState.QUEUED
        self.eta: float | None = None
        # First and latest progress readings strictly between 0 and 100: (seconds since submit, percent).
        self.progress0: int | None = None
        self.time0 = 0.0
        self.progress1: int | None = None
        self.time1 = 0.0


class Poller:
    """Checks the status of every tracked task; resolves each task's callbacks with its outcome."""

    FIRST_QUANTILE = 0.05
    """A task's first look comes when about this share of tasks like it are done already."""
    FIRST_SPREAD = 0.2
    """First looks of alike tasks are spread over this share of their delay: the early ones teach the rest."""
    LINE_WAITS = 6
    """Half seconds a first look may wait for the scouts' lines (a reading is worth more once they are in)."""
    DIRECT_LIMIT = 6.0
    """Largest uncertainty, in ``near_end_interval`` units, at which the next check aims straight at the finish."""
    MARGIN_SHARE = 0.15
    """Share of a prediction's uncertainty by which a check aimed at the finish comes after it."""
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
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # urgent checks: aimed at a predicted finish
        self._routine: list[tuple[float, int, str, int]] = []  # first looks, intermediate readings, retries
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._model = BatchModel()
        self._retrier = Retrier(retry, clock=clock)
        self._unknown_words: set[str] = set()
        self._unplanned: list[_Entry] = []
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
            entry = self._entries[task.task_id] = _Entry(task, started, limit)
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
        send, receive = anyio.create_memory_object_stream[_Entry](0)
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

    async def _worker(self, entries: anyio.abc.ObjectReceiveStream[_Entry]) -> None:
        async for entry in entries:
            await self._check_guarded(entry)

    def _reset_wake(self) -> anyio.Event:
        self._wake = anyio.Event()
        return self._wake

    # -- scheduling ---------------------------------------------------------------------------------------

    def _schedule(self, entry: _Entry, when: float) -> None:
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
            if entry.checks or entry.cleared or self._first_check_due(entry):
                entry.cleared = True
                return None
            # deferred: _first_check_due rescheduled it

    def _pop_due(self) -> _Entry | None:
        """The most urgent due entry, marked in flight; ``None`` if what was due is gone meanwhile."""
        now = self.clock.monotonic()
        for heap in (self._heap, self._routine):
            if self._top(heap) <= now:
                _, _, task_id, _ = heapq.heappop(heap)
                entry = self._entries[task_id]
                entry.version += 1  # in flight: nothing else may fire it
                return entry
        return None

    def _first_check_due(self, entry: _Entry) -> bool:
        """Whether to check a task for the first time now, or (returning False) reschedule it later."""
        now = self.clock.monotonic()
        model = self._model
        if entry.probe:
            return True
        if model.probes < model.PROBES and len(model.estimates) + len(model.predicted) < model.PROBES:
            # Among the first tasks: look now, to learn what the rest can expect.
            entry.probe = True
            model.probes += 1
            if model.scouts < model.SCOUTS:
                entry.scout = True
                model.scouts += 1
            return True
        age = now - entry.started
        basis = model.first_look(self.FIRST_QUANTILE)
        if basis is None:  # nothing learned yet: wait for the probes, but not forever
            wait = self.policy.first_check if entry.deferrals < 4 else 0.0
        else:
            # Look when only the fastest few percent of tasks like it are done already. What the batch learns
            # meanwhile may bring that moment forward; only better evidence may push it back: the tasks asked
            # about later are the slower ones, and chasing them would make the fast ones wait.
            typical, level = basis
            when = max(self.policy.first_check, typical * entry.spread)
            entry.first_look = when if level > entry.evidence else min(entry.first_look, when)
            entry.evidence = level
            wait = min(entry.first_look, self.policy.max_interval) - age
        if (
            wait <= 0.05
            and model.progress_seen
            and len(model.queue_share) < model.SHARES_NEEDED
            and entry.line_waits < self.LINE_WAITS
        ):
            # One reading says little until the scouts' lines tell how progress relates to the finish.
            entry.line_waits += 1
            wait = 0.5
        if wait <= 0.05 or entry.deferrals >= 64:
            return True
        entry.deferrals += 1
        # Decide again within a second: what the batch learns meanwhile may bring the first look forward.
        self._schedule(entry, self._capped(entry, now + min(wait, 1.0)))
        return False

    def _jittered(self, delay: float, *, most: float | None = None) -> float:
        """``delay`` spread by the policy's relative jitter, by at most ``most`` seconds either way if given."""
        spread = self.policy.jitter
        if not spread:
            return delay
        amount = delay * spread if most is None else min(delay * spread, most)
        return delay + random.uniform(-amount, amount)

    def _plan(self, entry: _Entry, now: float) -> float:
        """Seconds until the next check of a task that is still going (jittered)."""
        policy = self.policy
        elapsed = now - entry.started
        prediction = predict(entry, self._model)
        entry.urgent = False
        if prediction is None:
            # Nothing known at all: back off geometrically with the task's age.
            return self._jittered(min(policy.max_interval, max(policy.min_interval, elapsed * 0.5)))
        total, uncertainty = prediction
        if not entry.counted and entry.progress0 is not None and uncertainty < 0.2 * total:
            entry.counted = True  # once per task: the sample is of tasks, not of readings
            self._model.predicted.add(total)
        remaining = total - elapsed
        if (
            not entry.unplanned
            and entry.progress1 is None
            and entry.progress0 is not None
            and len(self._model.queue_share) < self._model.SHARES_NEEDED
        ):
            entry.unplanned = True  # planned on a rough guess; planned again once the scouts have measured
            self._unplanned.append(entry)
        if entry.scout and self._scouting(entry):
            return self._jittered(max(policy.min_interval, min(policy.near_end_interval, remaining)))
        earliest = remaining - uncertainty
        margin = min(policy.near_end_interval, self.MARGIN_SHARE * uncertainty)
        if uncertainty <= self.DIRECT_LIMIT * policy.near_end_interval and remaining > -margin:
            # Precise: just after the predicted finish. Finishes differ from task to task, so these checks are
            # spread anyway; jitter may not push one far past its aim.
            delay = remaining + margin
            entry.urgent = True
            return min(policy.max_interval, max(policy.min_interval, self._jittered(delay, most=0.2 * margin)))
        if earliest > policy.min_interval:
            delay = earliest  # imprecise: look when it could first be done; that reading sharpens the prediction
        elif remaining > -margin:
            delay = max(policy.near_end_interval, 0.25 * uncertainty)  # may finish any moment: a steady cadence
            entry.urgent = True
        else:
            overdue = -remaining
            # Past the prediction: at a short cadence while that is within its uncertainty, then backing off.
            delay = policy.near_end_interval if overdue <= 3 * uncertainty + 2.0 else overdue * 0.25
            entry.urgent = True
        return self._jittered(min(policy.max_interval, max(policy.min_interval, delay)))

    def _replan(self, now: float) -> None:
        """The model has just learned to read single progress readings: plan anew the tasks read before."""
        waiting, self._unplanned = self._unplanned, []
        for entry in waiting:
            entry.unplanned = False
            if self._entries.get(entry.task.task_id) is entry:
                # An entry being checked right now is rescheduled again when its answer comes: harmless.
                self._schedule(entry, self._capped(entry, now + self._plan(entry, now)))

    def _scouting(self, entry: _Entry) -> bool:
        """Whether a scout still reads its progress often, to measure its line while the model lacks lines."""
        if entry.measured or len(self._model.queue_share) >= self._model.SHARES_NEEDED:
            return False
        if len(self._entries) <= 4 * self._model.SCOUTS:
            return False  # too few tasks outstanding for what a scout learns to pay for its extra checks
        # A provider that reports no progress gets a few quick looks, then the plain plan.
        return entry.checks < (self._model.SCOUT_CHECKS if entry.progress0 is not None else 4)

    def _learn(self, entry: _Entry, now: float) -> None:
        """A task finished: remember how long it took."""
        self._model.durations.add(finished_duration(entry, self._model, now - entry.started, entry.last_seen))

    # -- one check ----------------------------------------------------------------------------------------

    async def _check_guarded(self, entry: _Entry) -> None:
        try:
            await self._check(entry)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # a bug must not kill the loop; the waiter gets the error
            logger.exception("hailuo_async: unexpected error while polling task %s", entry.task.task_id)
            self._resolve(entry, exc if isinstance(exc, HailuoError) else _internal_error(exc))

    async def _check(self, entry: _Entry) -> None:
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

    def _note_status(self, entry: _Entry, status: TaskStatus) -> None:
        word = status.provider_status
        if word and map_status_word(word) is None and word not in self._unknown_words:
            self._unknown_words.add(word)
            logger.warning("hailuo_async: %s sent unknown status %r; still polling", self.provider.name, word)
        entry.state = status.state
        if entry.listener is not None:
            entry.listener(status)

    async def _complete(self, entry: _Entry, status: TaskStatus, now: float) -> None:
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

    def _undecodable(self, entry: _Entry, last: DecodeError) -> DecodeError:
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

    def _after_failure(self, entry: _Entry, exc: HailuoError, *, floor: float = 0.0) -> None:
        self.errors += 1
        entry.errors += 1
        now = self.clock.monotonic()
        if self._past_deadline(entry, now, cause=exc):
            return
        logger.info("hailuo_async: status check of %s failed (%s); retrying", entry.task.task_id, type(exc).__name__)
        delay = min(self.policy.max_interval, retry_delay(entry.errors - 1, self.retry, floor))
        self._schedule(entry, self._capped(entry, now + max(delay, floor)))

    @staticmethod
    def _capped(entry: _Entry, when: float) -> float:
        # The last check happens at the deadline itself, so a timeout is reported on time.
        return when if entry.deadline is None else min(when, entry.deadline)

    def _past_deadline(self, entry: _Entry, now: float, *, cause: BaseException | None = None) -> bool:
        if entry.deadline is None or now < entry.deadline:
            return False
        error = GenerationTimeoutError(
            provider=self.provider.name, task_id=entry.task.task_id, waited=now - entry.started
        )
        if cause is not None:
            error.__cause__ = cause
        self._resolve(entry, error)
        return True

    def _resolve(self, entry: _Entry, outcome: Outcome) -> None:
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
