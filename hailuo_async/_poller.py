"""The one shared poller: a single loop that checks every outstanding task of a client.

Tasks wait in a heap ordered by their next check (O(log n) per check, whatever the number outstanding); a fixed
pool of workers performs the checks. Each task is checked as few times as possible: its first check waits until
tasks like it are typically well under way (learned from the batch: finished tasks, apimart's ``estimated_time``,
other tasks' progress; a few early "scout" checks bootstrap this), and from then on its next check is aimed just
after its predicted finish. The prediction uses the rate at which the provider's ``progress`` rises (two readings
give the line; one reading plus the queueing share learned from finished tasks gives it too), else the provider's
estimate, else the batch's typical duration; when the finish is still far or uncertain, an intermediate reading
comes first. A 429 pauses the whole client through the pacer; one task's error never stops the loop; a task past
its deadline gets :class:`GenerationTimeoutError` and is dropped.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import itertools
import logging
import random
from collections.abc import Callable

import anyio
import anyio.abc

from ._config import Clock, PollPolicy, RetryPolicy
from ._exceptions import (
    GenerationFailedError,
    GenerationTimeoutError,
    HailuoError,
    RateLimitError,
)
from ._http import HttpRequest, HttpResponse, redact
from ._models import Generation, Task, TaskState, TaskStatus
from ._retry import Retrier, is_retryable, retry_delay
from ._scheduler import RequestPacer
from ._transport import Transport
from .providers import Provider, map_status_word

__all__ = ["Outcome", "Poller"]

logger = logging.getLogger("hailuo_async")

Outcome = Generation | HailuoError
Callback = Callable[[Outcome], None]


class _Entry:
    __slots__ = (
        "callbacks",
        "checks",
        "deadline",
        "deferrals",
        "errors",
        "eta",
        "listener",
        "progress0",
        "progress1",
        "request",
        "scout",
        "started",
        "state",
        "task",
        "time0",
        "time1",
        "version",
    )

    def __init__(self, task: Task, started: float, deadline: float | None) -> None:
        self.task = task
        self.started = started
        self.deadline = deadline
        self.callbacks: list[Callback] = []
        self.listener: Callable[[TaskStatus], None] | None = None
        self.checks = 0
        self.errors = 0
        self.deferrals = 0
        self.version = 0
        self.scout = False
        self.request: HttpRequest | None = None  # the status request, built once
        self.state = TaskState.QUEUED
        self.eta: float | None = None
        # First and latest progress readings strictly between 0 and 100: (seconds since submit, percent).
        self.progress0: int | None = None
        self.time0 = 0.0
        self.progress1: int | None = None
        self.time1 = 0.0


class _Sample:
    """The last ``size`` values of a quantity, kept sorted for quantiles."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._sorted: list[float] = []
        self._recent: collections.deque[float] = collections.deque()

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, value: float) -> None:
        if len(self._recent) >= self._size:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(value)
        bisect.insort(self._sorted, value)

    def quantile(self, q: float, *, least: int = 3) -> float | None:
        if len(self._sorted) < least:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(q * len(self._sorted)))]


class _Model:
    """What this client has learned about its tasks, to plan checks of the others."""

    SCOUTS = 6
    """Tasks checked early, before anything is known, to learn what the rest can expect."""

    def __init__(self) -> None:
        self.durations = _Sample()  # submit -> finish, seconds, of finished tasks
        self.predicted = _Sample()  # predicted submit -> finish of running tasks (progress-based)
        self.estimates = _Sample()  # the provider's own estimates (apimart estimated_time)
        self.queue_share = _Sample()  # share of a task's duration spent before progress starts rising
        self.scouts = 0

    def typical(self, q: float) -> float | None:
        """Quantile ``q`` of how long tasks take, from the best evidence available; with little evidence, the
        low quantiles are lowered further (an early first look costs one request, a late one costs lag)."""
        for sample, least in ((self.durations, 5), (self.predicted, 3), (self.estimates, 3)):
            value = sample.quantile(q, least=least)
            if value is not None:
                return value if len(sample) >= 20 or q >= 0.5 else 0.6 * value
        return None


class Poller:
    """Checks the status of every tracked task; resolves each task's callbacks with its outcome."""

    def __init__(
        self,
        *,
        provider: Provider,
        transport: Transport,
        pacer: RequestPacer,
        policy: PollPolicy,
        retry: RetryPolicy,
        clock: Clock,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.provider = provider
        self.transport = transport
        self.pacer = pacer
        self.policy = policy
        self.retry = retry
        self.clock = clock
        self.on_request = on_request or (lambda route: None)
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._model = _Model()
        self._retrier = Retrier(retry)
        self._unknown_words: set[str] = set()
        self.status_requests = 0
        self.errors = 0

    # -- public -------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

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
        """The polling loop; runs until cancelled (the client's task group owns it)."""
        send, receive = anyio.create_memory_object_stream[_Entry](0)
        async with send, receive, anyio.create_task_group() as tg:
            for _ in range(self.policy.status_concurrency):
                tg.start_soon(self._worker, receive)
            while True:
                entry = self._next_due()
                if entry is None:
                    timeout = self._heap[0][0] - self.clock.monotonic() if self._heap else None
                    await self.clock.wait(self._reset_wake(), timeout)
                    continue
                if entry.checks == 0 and not self._first_check_due(entry):
                    continue  # deferred: what the batch has learned says it is too early to look
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
        wake = not self._heap or when < self._heap[0][0]
        heapq.heappush(self._heap, (when, next(self._seq), entry.task.task_id, entry.version))
        if wake:
            self._wake.set()

    def _next_due(self) -> _Entry | None:
        now = self.clock.monotonic()
        heap = self._heap
        while heap:
            due, _, task_id, version = heap[0]
            entry = self._entries.get(task_id)
            if entry is None or entry.version != version:
                heapq.heappop(heap)  # stale: rescheduled or resolved since
                continue
            if due > now:
                return None
            heapq.heappop(heap)
            entry.version += 1  # in flight: nothing else may fire it
            return entry
        return None

    def _first_check_due(self, entry: _Entry) -> bool:
        """Whether to check a task for the first time now, or (returning False) reschedule it later."""
        now = self.clock.monotonic()
        model = self._model
        typical = model.typical(0.02)
        if typical is not None:
            # Look when only the fastest few percent of tasks like it are done already.
            when = entry.started + min(max(self.policy.first_check, typical), self.policy.max_interval)
        elif entry.scout or model.scouts < model.SCOUTS:
            if not entry.scout:
                entry.scout = True
                model.scouts += 1
            return True
        else:  # nothing learned yet: wait for the scouts, but not forever
            when = now + self.policy.first_check if entry.deferrals < 4 else now
        if when - now <= 0.05 or entry.deferrals >= 8:
            return True
        entry.deferrals += 1
        self._schedule(entry, self._capped(entry, when))
        return False

    def _jittered(self, delay: float) -> float:
        spread = self.policy.jitter
        return delay * (1.0 + random.uniform(-spread, spread)) if spread else delay

    def _observe(self, entry: _Entry, status: TaskStatus, now: float) -> None:
        """Keep what a status answer tells about the task's pace."""
        if status.eta is not None and status.eta > 0:
            if entry.eta is None:
                self._model.estimates.add(status.eta)
            entry.eta = status.eta
        progress = status.progress
        if progress is not None and 0 < progress < 100:
            elapsed = now - entry.started
            if entry.progress0 is None:
                entry.progress0, entry.time0 = progress, elapsed
            elif progress > (entry.progress1 or entry.progress0):
                first_line = entry.progress1 is None
                entry.progress1, entry.time1 = progress, elapsed
                if first_line and progress - entry.progress0 >= 5:
                    # Two readings draw the task's line: where it meets 0% tells how long it queued, as a share
                    # of its whole duration; other tasks' single readings then predict their finish.
                    rate = (progress - entry.progress0) / (elapsed - entry.time0)
                    total = elapsed + (100 - progress) / rate
                    start = entry.time0 - entry.progress0 / rate
                    self._model.queue_share.add(min(max(start / total, 0.0), 0.9))

    def _predict(self, entry: _Entry) -> tuple[float, float] | None:
        """``(seconds from submit to the predicted finish, uncertainty in seconds)`` from the most precise evidence
        at hand, or ``None`` when there is none."""
        candidates: list[tuple[float, float]] = []
        p0, t0, p1, t1 = entry.progress0, entry.time0, entry.progress1, entry.time1
        if p0 is not None and p1 is not None and t1 > t0:
            rate = (p1 - p0) / (t1 - t0)
            left = (100 - p1) / rate
            # Whole-point progress: the rate is uncertain by about a point over the points gained.
            candidates.append((t1 + left, left / (p1 - p0) + 1.0 / rate))
        if p0 is not None and t0 > 0:
            shares = self._model.queue_share
            share = shares.quantile(0.5, least=5)
            if share is not None:
                # progress = (t - share * T) / ((1 - share) * T)  =>  T = t / (share + (1 - share) * progress)
                total = t0 / (share + (1.0 - share) * p0 / 100.0)
                spread = max((shares.quantile(0.75) or share) - (shares.quantile(0.25) or share), 0.03)
                candidates.append((total, total / p0 + spread * total))
            else:  # assuming progress rose from the submit gives a late bound, as uncertain as the queueing was
                total = t0 * 100.0 / p0
                candidates.append((total, 0.3 * (total - t0) + total / p0))
        if entry.eta is not None:
            candidates.append((entry.eta, 0.3 * entry.eta))
        if not candidates:  # nothing about this task itself: how long its peers take
            typical = self._model.typical(0.5)
            if typical is not None:
                candidates.append((typical, 0.5 * typical))
        return min(candidates, key=lambda c: c[1]) if candidates else None

    def _plan(self, entry: _Entry, now: float) -> float:
        """Seconds until the next check of a task that is still going."""
        policy = self.policy
        elapsed = now - entry.started
        prediction = self._predict(entry)
        if prediction is None:
            # Nothing known at all: back off geometrically with the task's age.
            return min(policy.max_interval, max(policy.min_interval, elapsed * 0.5))
        total, uncertainty = prediction
        if entry.progress0 is not None and uncertainty < 0.2 * total:
            self._model.predicted.add(total)
        remaining = total - elapsed
        earliest = remaining - uncertainty
        margin = min(policy.near_end_interval, 0.1 + 0.1 * uncertainty)
        if uncertainty <= 1.5 * policy.near_end_interval and remaining > -margin:
            delay = remaining + margin  # precise: just after the predicted finish
        elif earliest > policy.min_interval:
            delay = earliest  # imprecise: look when it could first be done; that reading sharpens the prediction
        elif remaining > -margin:
            delay = max(policy.near_end_interval, 0.25 * uncertainty)  # may finish any moment: a steady cadence
        else:
            overdue = -remaining
            # Past the prediction: at a short cadence while that is within its uncertainty, then backing off.
            delay = policy.near_end_interval if overdue <= 3 * uncertainty + 2.0 else overdue * 0.25
        return min(policy.max_interval, max(policy.min_interval, delay))

    def _learn(self, entry: _Entry, now: float) -> None:
        """A task finished: remember how long it took."""
        total = now - entry.started
        p0, t0, p1, t1 = entry.progress0, entry.time0, entry.progress1, entry.time1
        if p0 is not None and p1 is not None and t1 > t0:
            rate = (p1 - p0) / (t1 - t0)
            total = min(total, t1 + (100 - p1) / rate)  # the line knows the finish better than our late look
        self._model.durations.add(total)

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
            await self.pacer.acquire()
            self.status_requests += 1
            self.on_request("status")
            response = await self.transport.send(request)
            if response.status != 429:
                self.pacer.on_success()
            status = self.provider.parse_status(response)
        except RateLimitError as exc:
            self.pacer.on_rate_limited(exc.retry_after, self.retry.rate_limit_default)
            self._after_failure(entry, exc, floor=exc.retry_after or self.retry.rate_limit_default)
            return
        except HailuoError as exc:
            if is_retryable(exc):
                self._after_failure(entry, exc)
                return
            self._resolve(entry, exc)  # the provider refuses to tell (401, 404, ...): give up on this one
            return
        entry.errors = 0
        entry.checks += 1
        now = self.clock.monotonic()
        self._note_status(entry, status)
        self._observe(entry, status, now)
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
            self._schedule(entry, self._capped(entry, now + self._jittered(self._plan(entry, now))))

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
            ),
        )

    async def fetch_url(self, file_id: str) -> tuple[str, float | None]:
        """Turn a finished task's file id into its video URL (MiniMax files/retrieve), with retries."""
        request = self.provider.build_fetch(file_id)

        async def call() -> tuple[str, float | None]:
            await self.pacer.acquire()
            self.on_request("retrieve")
            response: HttpResponse = await self.transport.send(request)
            if response.status != 429:
                self.pacer.on_success()
            return self.provider.parse_fetch(response)

        return await self._retrier(call)

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
