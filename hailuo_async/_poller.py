"""The one shared poller: a single loop that checks every outstanding task of a client.

Tasks wait in a heap ordered by their next check (O(log n) per check, whatever the number outstanding). Each
answer moves the task's next check: rarely while its predicted finish is far, right after the predicted finish
when it is near, then at a short cadence once overdue. The prediction uses, in order of trust, the rate at which
the provider's ``progress`` rises, the provider's own estimate (apimart ``estimated_time``) and how long this
client's finished tasks took. A 429 pauses the whole client through the pacer; one task's error never stops the
loop; a task past its deadline gets :class:`GenerationTimeoutError` and is dropped.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import random
from collections.abc import Callable

import anyio

from ._config import Clock, PollPolicy, RetryPolicy
from ._exceptions import (
    GenerationFailedError,
    GenerationTimeoutError,
    HailuoError,
    RateLimitError,
)
from ._http import HttpResponse, redact
from ._models import Generation, Task, TaskState, TaskStatus
from ._retry import call_with_retries, is_retryable, retry_delay
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
        "errors",
        "listener",
        "progress0",
        "started",
        "state",
        "task",
        "time0",
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
        self.version = 0
        self.state = TaskState.QUEUED
        self.progress0: int | None = None
        self.time0 = 0.0


class _Durations:
    """How long this client's tasks took from submit to finish (the last 512), as a prior for new ones."""

    def __init__(self) -> None:
        self._sorted: list[float] = []
        self._recent: list[float] = []

    def add(self, seconds: float) -> None:
        if len(self._recent) >= 512:
            old = self._recent.pop(0)
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(seconds)
        bisect.insort(self._sorted, seconds)

    def quantile(self, q: float) -> float | None:
        if len(self._sorted) < 3:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(q * len(self._sorted)))]


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
        self._limiter = anyio.Semaphore(policy.status_concurrency)
        self._durations = _Durations()
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
        async with anyio.create_task_group() as tg:
            while True:
                entry = self._next_due()
                if entry is None:
                    continue_at = self._heap[0][0] if self._heap else None
                    await self._sleep_until(continue_at)
                    continue
                await self._limiter.acquire()
                tg.start_soon(self._check_guarded, entry)

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

    async def _sleep_until(self, when: float | None) -> None:
        self._wake = wake = anyio.Event()
        if when is None:
            await wake.wait()
            return
        delay = when - self.clock.monotonic()
        if delay <= 0:
            return
        async with anyio.create_task_group() as tg:

            async def sleeper() -> None:
                await self.clock.sleep(delay)
                tg.cancel_scope.cancel()

            async def waker() -> None:
                await wake.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(sleeper)
            tg.start_soon(waker)

    def _jittered(self, delay: float) -> float:
        spread = self.policy.jitter
        return delay * (1.0 + random.uniform(-spread, spread)) if spread else delay

    def _plan(self, entry: _Entry, status: TaskStatus, now: float) -> float:
        """Seconds until the next check of a task that is still going."""
        policy = self.policy
        progress = status.progress
        end: float | None = None
        unit = 0.0  # seconds per progress point: how precisely the finish is known
        if progress is not None and 0 < progress < 100:
            if entry.progress0 is None:
                entry.progress0, entry.time0 = progress, now
            elif progress > entry.progress0 and now > entry.time0:
                gained = progress - entry.progress0
                rate = gained / (now - entry.time0)
                left = (100 - progress) / rate
                end = now + left
                # Progress is reported in whole points, so the rate is uncertain by about one point over the
                # points gained: the finish may come that much earlier (plus one point of resolution).
                unit = left / gained + 1.0 / rate
        if end is None and status.eta is not None and status.eta > 0:
            end = entry.started + status.eta
        if end is None:
            typical = self._durations.quantile(0.5)
            if typical is not None:
                end = entry.started + typical
        if end is None:
            # Nothing known yet: back off geometrically with the task's age.
            return min(policy.max_interval, max(policy.min_interval, (now - entry.started) * 0.5))
        # Aim a little before the predicted finish: by its uncertainty when progress tells us, 10% of the expected
        # duration early when only an estimate does. Then check at a short cadence until it is done.
        confident = unit > 0
        target = end - (unit if confident else 0.1 * max(end - entry.started, 0.0))
        remaining = target - now
        if remaining > 4 * policy.near_end_interval:
            delay = remaining * (0.85 if confident else 0.6)
        elif remaining > 0:
            delay = remaining
        else:
            overdue = now - end
            slack = 3 * unit if confident else 0.2 * max(end - entry.started, 0.0)
            # Past the prediction by more than its own uncertainty: the prediction was wrong, back off gently.
            delay = policy.near_end_interval if overdue <= slack else max(policy.near_end_interval, overdue * 0.25)
        return min(policy.max_interval, max(policy.min_interval, delay))

    # -- one check ----------------------------------------------------------------------------------------

    async def _check_guarded(self, entry: _Entry) -> None:
        try:
            await self._check(entry)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # a bug must not kill the loop; the waiter gets the error
            logger.exception("hailuo_async: unexpected error while polling task %s", entry.task.task_id)
            self._resolve(entry, exc if isinstance(exc, HailuoError) else _internal_error(exc))
        finally:
            self._limiter.release()

    async def _check(self, entry: _Entry) -> None:
        task = entry.task
        if self._entries.get(task.task_id) is not entry:
            return
        request = self.provider.build_status(task.task_id)
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
        if status.state is TaskState.COMPLETED:
            await self._complete(entry, status, now)
        elif status.state is TaskState.FAILED:
            self._durations.add(now - entry.started)
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
            self._schedule(entry, self._capped(entry, now + self._jittered(self._plan(entry, status, now))))

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
        self._durations.add(now - entry.started)
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

        return await call_with_retries(call, policy=self.retry)

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
