"""The one shared poller: a single loop that checks every outstanding task of a client.

Data flow: the client hands each submitted task to :meth:`Poller.track`; the loop takes a token from the
:class:`~hailuo_async._pacer.RequestPacer` for every due check, a fixed pool of workers sends it through the
transport, the provider codec parses the answer, and the outcome reaches the task's callbacks.

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

import bisect
import collections
import functools
import heapq
import itertools
import logging
import math
import random
import statistics
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


class _Sample:
    """The last ``size`` values of a quantity, kept sorted for quantiles."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._sorted: list[float] = []
        self._recent: collections.deque[float] = collections.deque()
        self.version = 0  # counts additions: what was derived from the sample holds while it is unchanged

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, value: float) -> None:
        self.version += 1
        if len(self._recent) >= self._size:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(value)
        bisect.insort(self._sorted, value)

    def quantile(self, q: float, *, least: int = 3) -> float | None:
        if len(self._sorted) < least:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(q * len(self._sorted)))]


def _fitted(sample: _Sample, q: float, *, least: int) -> float | None:
    """Quantile ``q`` of a log-normal fitted to ``sample`` by its quartiles: far steadier than the sample's own low
    quantile, which for a small sample is just its smallest value."""
    if len(sample) < least:
        return None
    low, mid, high = sample.quantile(0.25, least=1), sample.quantile(0.5, least=1), sample.quantile(0.75, least=1)
    if low is None or mid is None or high is None or low <= 0:
        return sample.quantile(q, least=least)
    sigma = (math.log(high) - math.log(low)) / 1.349
    return mid * math.exp(_z(q) * sigma)


@functools.cache
def _z(q: float) -> float:
    """The standard normal's quantile ``q`` (the poller asks for the same few, many times)."""
    return statistics.NormalDist().inv_cdf(q)


def _estimate(sample: _Sample, q: float, *, least: int) -> float | None:
    """Quantile ``q`` of what ``sample`` is drawn from: the sample's own for the median and above; below, the
    fitted log-normal's, lowered further while the sample is tiny (too late a guess costs lag, too early a one
    a request)."""
    if q >= 0.5:
        return sample.quantile(q, least=least)
    value = _fitted(sample, q, least=least)
    if value is None:
        return None
    return value if len(sample) >= 20 else 0.6 * value


class _Model:
    """What this client has learned about its tasks, to plan checks of the others."""

    PROBES = 20
    """Tasks checked early, before anything is known, to learn what the rest can expect."""
    SCOUTS = 6
    """Tasks checked early and often, before anything is known, to learn what the rest can expect."""
    SCOUT_CHECKS = 16
    """Most checks of one scout at its quick cadence."""
    SHARE_SPAN = 20
    """Progress points between two readings of one task before its line is trusted to tell its queueing share."""
    SHARES_NEEDED = 3
    """Queueing shares measured before single readings are turned into predictions with them."""

    def __init__(self) -> None:
        self.durations = _Sample()  # submit -> finish, seconds, of finished tasks
        self.predicted = _Sample()  # predicted submit -> finish of running tasks (progress-based)
        self.estimates = _Sample()  # the provider's own estimates (apimart estimated_time)
        self.queue_share = _Sample()  # share of a task's duration spent before progress starts rising
        self.scouts = 0
        self.probes = 0
        self._share_noise = 0.0  # sum of the squared measurement errors of the shares
        self._share_count = 0
        self.progress_seen = False  # the provider reports progress between 0 and 100
        self._first_look: tuple[tuple[float, int, int, int] | None, tuple[float, int] | None] = (None, None)

    def add_share(self, share: float, error: float) -> None:
        self.queue_share.add(share)
        self._share_noise += error * error
        self._share_count += 1

    def share_spread(self) -> float:
        """Standard deviation of the error of using the median measured share for any one task: the tasks' true
        spread (the measured spread less what measurement error explains) plus the median's own error."""
        shares = self.queue_share
        low, high = shares.quantile(0.25, least=1), shares.quantile(0.75, least=1)
        if low is None or high is None or not self._share_count:
            return 0.1
        noise = self._share_noise / self._share_count
        observed = ((high - low) / 1.35) ** 2
        return math.sqrt(max(observed - noise, 0.0) + 1.57 * noise / len(shares))

    def first_look(self, q: float) -> tuple[float, int] | None:
        """``(quantile q of how long tasks take, how good that evidence is)``: finished tasks once there are
        many (3), else precise predictions of running ones (2), else the provider's estimates (1); a few finished
        tasks bound it from above either way (the first to finish are the fast ones). Asked again for every
        deferred first look, so it is worked out once per change of the samples."""
        key = (q, self.durations.version, self.predicted.version, self.estimates.version)
        if self._first_look[0] != key:
            self._first_look = (key, self._work_out_first_look(q))
        return self._first_look[1]

    def _work_out_first_look(self, q: float) -> tuple[float, int] | None:
        if len(self.durations) >= 50:
            value = _estimate(self.durations, q, least=50)
            return None if value is None else (value, 3)
        predicted = _estimate(self.predicted, q, least=20)
        if predicted is not None:
            basis = (predicted, 2)
        else:
            estimated = _estimate(self.estimates, q, least=3)
            if estimated is None:
                return None
            basis = (estimated, 1)
        finished = _estimate(self.durations, q, least=5)
        return basis if finished is None else (min(basis[0], finished), basis[1])

    def typical(self) -> float | None:
        """The median of how long tasks take, from the best evidence available: finished tasks once there are
        many, else the latest of what each sample says (the first tasks to finish are the fast ones)."""
        if len(self.durations) >= 50:
            return self.durations.quantile(0.5)
        values = [
            value
            for sample, least in ((self.durations, 5), (self.predicted, 10), (self.estimates, 3))
            if (value := sample.quantile(0.5, least=least)) is not None
        ]
        return max(values) if values else None


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
    SHARE_SIGMAS = 2.0
    """Standard deviations of the queueing share counted as its uncertainty."""
    TICK = 0.1
    """Seconds of the grid the loop wakes on: checks due within one tick go out together."""
    TIMING = 0.1
    """Seconds of uncertainty every prediction carries: request latency, the moment of the submit."""
    SHARE_FLOOR = 0.003
    """Least spread assumed between tasks' queueing shares, however alike the measured ones are."""
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
        self._model = _Model()
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

    def _observe(self, entry: _Entry, status: TaskStatus, now: float) -> None:
        """Keep what a status answer tells about the task's pace."""
        if status.eta is not None and status.eta > 0:
            if entry.eta is None:
                self._model.estimates.add(status.eta)
            entry.eta = status.eta
        progress = status.progress
        if progress is not None and 0 < progress < 100:
            self._model.progress_seen = True
            elapsed = now - entry.started
            if entry.progress0 is None:
                entry.progress0, entry.time0 = progress, elapsed
            elif progress > (entry.progress1 or entry.progress0):
                entry.progress1, entry.time1 = progress, elapsed
                if not entry.measured and progress - entry.progress0 >= self._model.SHARE_SPAN:
                    # Two readings far enough apart draw the task's line: where it meets 0% tells how long it
                    # queued, as a share of its whole duration; other tasks' single readings then predict their
                    # finish.
                    entry.measured = True
                    rate = (progress - entry.progress0) / (elapsed - entry.time0)
                    total = elapsed + (99.5 - progress) / rate  # whole points: the truth is half a point up
                    start = entry.time0 - (entry.progress0 + 0.5) / rate
                    # Its measurement error, from readings each off by up to a point (sd 0.29 point).
                    slope_error = 0.41 / (progress - entry.progress0)
                    start_error = math.hypot(0.29, (entry.progress0 + 0.5) * slope_error) / rate
                    self._model.add_share(min(max(start / total, 0.0), 0.9), start_error / total)
                    if len(self._model.queue_share) == self._model.SHARES_NEEDED:
                        self._replan(now)

    def _predict(self, entry: _Entry) -> tuple[float, float] | None:
        """``(seconds from submit to the predicted finish, uncertainty in seconds)`` from the most precise evidence
        at hand, or ``None`` when there is none. Progress comes in whole points, so a reading ``p`` means
        somewhere in ``[p, p + 1)``: half a point up is the best guess, half a point either way its error."""
        candidates: list[tuple[float, float]] = []
        p0, t0, p1, t1 = entry.progress0, entry.time0, entry.progress1, entry.time1
        if p0 is not None and p1 is not None and t1 > t0:
            rate = (p1 - p0) / (t1 - t0)
            left = (99.5 - p1) / rate
            # The rate is uncertain by about a point over the points gained.
            candidates.append((t1 + left, left / (p1 - p0) + 0.5 / rate + self.TIMING))
        if p0 is not None and t0 > 0:
            shares = self._model.queue_share
            share = shares.quantile(0.5, least=self._model.SHARES_NEEDED)
            done = (p0 + 0.5) / 100.0
            if share is not None:
                # progress = (t - share * T) / ((1 - share) * T)  =>  T = t / (share + (1 - share) * progress)
                scale = share + (1.0 - share) * done
                total = t0 / scale
                spread = max(self.SHARE_SIGMAS * self._model.share_spread(), self.SHARE_FLOOR)
                # d total / d progress and d total / d share, times their errors.
                error = total * ((1.0 - share) * 0.005 + (1.0 - done) * spread) / scale
                candidates.append((total, error + self.TIMING))
            else:
                # Without knowing how long tasks queue: progress rising from the submit gives the latest finish,
                # and the task can finish any moment from now on.
                latest = t0 / done
                candidates.append(((t0 + latest) / 2, (latest - t0) / 2))
        if entry.eta is not None:
            eta = (entry.eta, 0.3 * entry.eta)
            if candidates:
                # The provider's estimate only helps when it agrees with the task's own progress.
                best = min(candidates, key=lambda c: c[1])
                if abs(eta[0] - best[0]) <= best[1] + eta[1] and eta[1] < best[1]:
                    candidates.append(eta)
            else:
                candidates.append(eta)
        if not candidates:  # nothing about this task itself: how long its peers take
            typical = self._model.typical()
            if typical is not None:
                candidates.append((typical, 0.5 * typical))
        return min(candidates, key=lambda c: c[1]) if candidates else None

    def _plan(self, entry: _Entry, now: float) -> float:
        """Seconds until the next check of a task that is still going (jittered)."""
        policy = self.policy
        elapsed = now - entry.started
        prediction = self._predict(entry)
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
        total = now - entry.started
        p0, t0, p1, t1 = entry.progress0, entry.time0, entry.progress1, entry.time1
        if p0 is not None and p1 is not None and t1 > t0:
            rate = (p1 - p0) / (t1 - t0)
            total = min(total, t1 + (99.5 - p1) / rate)  # the line knows the finish better than our late look
        else:
            # Somewhere between the last look and this one: where a precise prediction put it, else the middle,
            # which errs early when the looks were far apart (found finished at its first look: anything up to now).
            prediction = self._predict(entry) if entry.progress0 is not None else None
            if prediction is not None and prediction[1] < 0.2 * total:
                total = min(max(prediction[0], entry.last_seen), total)
            else:
                total = (total + entry.last_seen) / 2
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
