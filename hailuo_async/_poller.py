"""The one shared poller: a single loop that checks every outstanding task of a client.

Data flow: the client hands each submitted task to :meth:`Poller.track`; the loop takes a token from the
:class:`~hailuo_async._pacer.RequestPacer` for every due check, a fixed pool of workers sends it through the
transport, the provider codec parses the answer, and the outcome reaches the task's callbacks. What each answer
teaches about when tasks finish is kept by the forecaster (:mod:`._forecast`); this module only schedules, sends
and resolves.

Tasks wait in two heaps ordered by their next check (O(log n) per check, whatever the number outstanding): checks
likely to find the task finished, served first when the provider's rate limit leaves room for fewer checks than are
due, and the others. When each check comes is the planner's (:mod:`._planner`): its contract bounds the detection
lag by ``PollPolicy.max_lag`` at the 95th percentile and the checks by those of a plain loop at ``max_lag``. A
planned moment may be only a time to plan again (a task waiting for the first tasks' news): that costs no request;
a task waiting for that news is planned again when it comes, even if its next moment is a check.
The loop wakes on a coarse grid so that checks due together go out together. A 429 pauses the whole client through
the pacer; one task's error never stops the loop; a task past its deadline gets :class:`GenerationTimeoutError`
and is dropped.
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
from ._forecast import Forecaster
from ._http import redact
from ._models import Generation, Task, TaskState, TaskStatus
from ._planner import NOT_AIMED, Entry, Planner
from ._retry import Retrier, is_retryable, retry_delay
from ._sender import PacedSender
from .providers import Provider, map_status_word

__all__ = ["Outcome", "Poller"]


logger = logging.getLogger("hailuo_async")

Outcome = Generation | HailuoError
Callback = Callable[[Outcome], None]

_ENDED = (TaskState.COMPLETED, TaskState.FAILED)


class Poller:
    """Checks the status of every tracked task; resolves each task's callbacks with its outcome."""

    TICK = 0.1
    """Seconds of the grid the loop wakes on: checks due within one tick go out together (at most a twentieth of
    ``max_lag``; the planner aims that much earlier on average)."""
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
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.sender = sender
        self.policy = policy
        self.retry = retry
        self.clock = clock
        self._entries: dict[str, Entry] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # urgent checks: aimed at a predicted finish
        self._routine: list[tuple[float, int, str, int]] = []  # the others: readings, retries, plans to revisit
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._forecaster = Forecaster(rng)
        self._tick = min(self.TICK, 0.05 * policy.max_lag)
        self._planner = Planner(policy, self._forecaster)
        self._planner.grid = self._tick
        pacer = sender.pacer
        self._planner.scarce = lambda: pacer.rate_limited > 0 or pacer.fixed_rate is not None
        self._waiting: dict[str, Entry] = {}  # tasks planned again on news (listening; some only waiting for it)
        self.webhook_lag: float | None = None
        """``max_lag`` of the safety-net polling of tasks whose provider was given a callback (:meth:`hooked`)."""
        self._hooked: set[str] = set()
        self.deliveries = 0  # webhook deliveries that brought a tracked task's end
        self.unknown_deliveries = 0  # deliveries about tasks this client does not track
        self._news_planned = -math.inf  # when the waiting tasks were last planned again on news
        self._brought_in: dict[str, tuple[float, float]] = {}  # per source: the reach last enforced, and when
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
            lag = self.webhook_lag if task.task_id in self._hooked else None
            entry = self._entries[task.task_id] = self._planner.enrol(task, started, limit, lag)
            self._schedule(entry, self._capped(entry, self._planner.next_check(entry, now)))
        elif entry.deadline is not None and (limit is None or limit > entry.deadline):
            entry.deadline = limit
        entry.callbacks.append(callback)
        if listener is not None:
            entry.listener = listener

    def hooked(self, task_id: str) -> None:
        """The provider was given a callback for ``task_id``: poll it only as a safety net (at ``webhook_lag``)."""
        if self.webhook_lag is not None:
            self._hooked.add(task_id)

    def deliver(self, task_id: str | None, status: TaskStatus | None) -> bool:
        """A webhook said something of ``task_id``. A task's end resolves it at once when the news carries the
        result (apimart's full status), else brings its next check forward to now (toapis says only that it ended;
        MiniMax's URL comes from one more call). Whichever of the webhook and the poller sees the end first wins;
        news of a task this client does not track is counted and left to the caller (returns ``False``)."""
        entry = self._entries.get(task_id) if task_id is not None else None
        if entry is None:
            self.unknown_deliveries += 1
            logger.debug("hailuo_async: webhook for a task this client does not track")
            return False
        if status is None or status.state not in _ENDED:
            return True  # news that it runs: the poller's plan stands
        self.deliveries += 1
        now = self.clock.monotonic()
        if status.state is TaskState.FAILED or status.video_url:
            self._note_status(entry, status)
            self._finish(entry, status, now, url=status.video_url, expires=status.expires_at, exact=True)
            return True
        entry.waiting = entry.listening = False
        entry.urgent, entry.news = True, None
        self._schedule(entry, now)
        return True

    def untrack(self, task_id: str, callback: Callback | None = None) -> None:
        """Forget ``callback`` (or every callback) of ``task_id``; polling stops once nobody waits."""
        entry = self._entries.get(task_id)
        if entry is None:
            return
        if callback is not None and callback in entry.callbacks:
            entry.callbacks.remove(callback)
        if callback is None or not entry.callbacks:
            self._forget(entry)

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
                        # Never before ``due`` itself (rounding may land a hair early: that would spin).
                        tick = self._tick
                        timeout = max(math.ceil(due / tick) * tick, due) - self.clock.monotonic()
                    await self.clock.wait(self._reset_wake(), timeout)
                    continue
                # A check likely to find a finish goes before waiting submits; the others after them.
                await self.sender.acquire(routine=self._top(self._heap) > self.clock.monotonic())
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
        if entry.listening:  # a task waiting for news (entry.waiting) always listens for it
            self._waiting[entry.task.task_id] = entry
        else:
            self._waiting.pop(entry.task.task_id, None)
        heap = self._heap if entry.urgent else self._routine
        wake = (not self._heap or when < self._heap[0][0]) and (not self._routine or when < self._routine[0][0])
        heapq.heappush(heap, (when, next(self._seq), entry.task.task_id, entry.version))
        if wake:
            self._wake.set()

    def _plan(self, entry: Entry, now: float) -> None:
        self._schedule(entry, self._capped(entry, self._planner.next_check(entry, now)))

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
        """``None`` when a check is due now; else when the next one will be (``inf``: nothing scheduled). Due
        moments that are only times to plan again are planned again on the way (no token needed for that)."""
        now = self.clock.monotonic()
        while True:
            urgent, routine = self._top(self._heap), self._top(self._routine)
            if min(urgent, routine) > now:
                return min(urgent, routine)
            heap = self._heap if urgent <= now else self._routine
            entry = self._entries[heap[0][2]]
            if not entry.waiting and not self._moved_on_news(entry, heap, now):
                return None
            if entry.waiting:
                heapq.heappop(heap)
                self._plan(entry, now)

    def _pop_due(self) -> Entry | None:
        """The most urgent due entry, marked in flight; ``None`` if what was due is gone meanwhile. Due moments
        that are only times to plan again are planned again on the way."""
        now = self.clock.monotonic()
        while True:
            heap = self._heap if self._top(self._heap) <= now else self._routine
            if self._top(heap) > now:
                return None
            entry = self._entries[heap[0][2]]
            if not entry.waiting and self._moved_on_news(entry, heap, now):
                continue
            heapq.heappop(heap)
            if entry.waiting:
                self._plan(entry, now)
                continue
            entry.version += 1  # in flight: nothing else may fire it
            if entry.listening:  # nor plan it again on news meanwhile: its answer does
                entry.listening = False
                self._waiting.pop(entry.task.task_id, None)
            return entry

    def _moved_on_news(self, entry: Entry, heap: list[tuple[float, int, str, int]], now: float) -> bool:
        """A due check planned on the beat before many tasks finished is planned again on what is known now; it
        moves only if that says to skip (a check still due keeps its place in the line)."""
        if not self._planner.stale(entry):
            return False
        when = self._capped(entry, self._planner.next_check(entry, now))
        if when <= now:
            return False
        heapq.heappop(heap)
        self._schedule(entry, when)
        return True

    def _learn(self, entry: Entry, now: float, *, exact: bool = False) -> None:
        """A task ended: the forecaster learns how long it took; tasks waiting for such news plan again (at most
        once a second: what one more finish changes is small)."""
        alarms = self._forecaster.alarms
        duration = (now - entry.started, 0.0) if exact else self._planner.duration(entry, now)
        self._forecaster.finished(entry.task.task_id, entry, *duration)
        if self._forecaster.alarms != alarms:  # an audited finish dropped a source
            self._aim_again(now)
        if self._waiting and now - self._news_planned >= 1.0:
            self._news_planned = now
            for waiting in list(self._waiting.values()):
                if self._entries.get(waiting.task.task_id) is waiting and waiting.listening:
                    self._plan(waiting, now)

    def _aim_again(self, now: float) -> None:
        """A source was found to forecast late: every check aimed from a forecast and not yet sent is planned again
        on what is known now (without that source), rather than left to find its task ended long before."""
        for _, entry in self._aimed():
            entry.aim = NOT_AIMED  # withdrawn, not answered: it tells the source's record nothing
            self._plan(entry, now)

    def _bring_in(self, source: str, now: float) -> None:
        """An answer gave evidence that ``source``'s forecasts come late: the checks already aimed from it further out
        than it now reaches (``Planner.reach``) come in to that reach. A pass over the heaps costs as many steps as
        tasks are tracked, so one is made only once the reach has halved since the last, or that one is older than
        the reach (checks aimed meanwhile, while the evidence had faded, may reach further again): a few per
        ``max_interval``, however large the batch and however often the evidence moves."""
        reach = self._planner.reach(source)
        last, when = self._brought_in.get(source, (math.inf, -math.inf))
        if reach > 0.5 * last and now - when < reach:
            return
        self._brought_in[source] = (reach, now)
        for due, entry in self._aimed():
            moved = self._planner.within_reach(entry, due) if entry.aim_source == source else due
            if moved < due:
                self._schedule(entry, max(now, moved))

    def _aimed(self) -> list[tuple[float, Entry]]:
        """Every check aimed from a forecast and not yet sent, with when it is due (read before any is moved)."""
        found: list[tuple[float, Entry]] = []
        for heap in (self._heap, self._routine):
            for due, _, task_id, version in heap:
                entry = self._entries.get(task_id)
                if entry is not None and entry.version == version and entry.aim >= 0.0:
                    found.append((due, entry))
        return found

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
            sent = self.clock.monotonic()
            status = await self.sender.call(request, self.provider.parse_status, paced=True)
            self._planner.took(self.clock.monotonic() - sent)
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
        alarms, source = self._forecaster.alarms, entry.aim_source
        suspicion = self._forecaster.suspicion(source)
        self._planner.answered(entry, now - entry.started, ended=status.state in _ENDED)
        if self._forecaster.alarms != alarms:  # the answer showed a source's forecasts come late: not used now
            self._aim_again(now)
        elif self._forecaster.suspicion(source) > suspicion:  # some evidence that they do: they reach less far
            self._bring_in(source, now)
        self._forecaster.observe(entry, status, now - entry.started)
        if status.state is TaskState.COMPLETED:
            await self._complete(entry, status, now)
        elif status.state is TaskState.FAILED:
            self._finish(entry, status, now)
        elif not self._past_deadline(entry, now):
            self._forecaster.saw(entry, now - entry.started)
            self._plan(entry, now)

    def _note_status(self, entry: Entry, status: TaskStatus) -> None:
        word = status.provider_status
        if word and map_status_word(word) is None and word not in self._unknown_words:
            self._unknown_words.add(word)
            logger.warning("hailuo_async: %s sent unknown status %r; still polling", self.provider.name, word)
        entry.state = status.state
        if entry.listener is not None:
            entry.listener(status)

    async def _complete(self, entry: Entry, status: TaskStatus, now: float) -> None:
        url, expires = status.video_url, status.expires_at
        if url is None and status.file_id is not None:
            try:
                url, expires = await self.fetch_url(status.file_id)
                self._planner.fetched(self.clock.monotonic() - now)
            except HailuoError as exc:
                if is_retryable(exc) and not self._past_deadline(entry, now):
                    self._after_failure(entry, exc)
                else:
                    self._resolve(entry, exc)
                return
        self._finish(entry, status, now, url=url, expires=expires)

    def _finish(
        self,
        entry: Entry,
        status: TaskStatus,
        now: float,
        *,
        url: str | None = None,
        expires: float | None = None,
        exact: bool = False,
    ) -> None:
        """Resolve a task the provider says has ended (unless a webhook or another check got there first).
        ``exact``: the news came as it ended (a webhook), so its duration is known."""
        task = entry.task
        if self._entries.get(task.task_id) is not entry:
            return
        self._learn(entry, now, exact=exact)
        if status.state is TaskState.FAILED:
            self._resolve(
                entry,
                GenerationFailedError(
                    redact(status.error or "task failed"),
                    provider=self.provider.name,
                    task_id=task.task_id,
                    code=status.error_code,
                ),
            )
            return
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
        entry.waiting = entry.urgent = entry.listening = False
        entry.news = None  # a retry's moment is not the planner's to move
        self._schedule(entry, self._capped(entry, now + max(delay, floor)))

    @staticmethod
    def _capped(entry: Entry, when: float) -> float:
        # The last check happens at the deadline itself, so a timeout is reported on time.
        if entry.deadline is None or when < entry.deadline:
            return when
        entry.waiting = entry.listening = False
        return entry.deadline

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

    def _forget(self, entry: Entry) -> None:
        task_id = entry.task.task_id
        if self._entries.get(task_id) is entry:
            del self._entries[task_id]
            self._waiting.pop(task_id, None)
            self._forecaster.forget(task_id)  # a probe gone unfinished must not bound the others
            self._hooked.discard(task_id)

    def _resolve(self, entry: Entry, outcome: Outcome) -> None:
        self._forget(entry)
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
