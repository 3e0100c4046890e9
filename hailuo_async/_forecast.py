"""The forecaster: what the poller knows about when each task will finish. Pure: no I/O, no clock of its own.

Data flow: every status answer the poller receives goes through :func:`observe` (a task's progress readings and the
provider's ``estimated_time``); every finished task's duration feeds the batch's :class:`BatchModel`; the poller
asks :func:`predict` for a task's finish (seconds from its submit, and the uncertainty of that figure) and
:meth:`BatchModel.first_look` for when tasks like it start to finish, and plans its checks from the answers.
"""

from __future__ import annotations

import bisect
import collections
import functools
import math
import statistics
from typing import Protocol

from ._models import TaskStatus

__all__ = ["BatchModel", "Readings", "Sample", "estimate", "finished_duration", "observe", "predict"]

TIMING = 0.1
"""Seconds of uncertainty every prediction carries: request latency, the moment of the submit."""
SHARE_SIGMAS = 2.0
"""Standard deviations of the queueing share counted as its uncertainty."""
SHARE_FLOOR = 0.003
"""Least spread assumed between tasks' queueing shares, however alike the measured ones are."""


class Readings(Protocol):
    """One task's evidence, kept by the poller: its first and latest progress readings strictly between 0 and 100
    (seconds since submit, percent), the provider's estimate, and whether its line has been measured."""

    progress0: int | None
    time0: float
    progress1: int | None
    time1: float
    eta: float | None
    measured: bool


class Sample:
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


def _fitted(sample: Sample, q: float, *, least: int) -> float | None:
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


def estimate(sample: Sample, q: float, *, least: int) -> float | None:
    """Quantile ``q`` of what ``sample`` is drawn from: the sample's own for the median and above; below, the
    fitted log-normal's, lowered further while the sample is tiny (too late a guess costs lag, too early a one
    a request)."""
    if q >= 0.5:
        return sample.quantile(q, least=least)
    value = _fitted(sample, q, least=least)
    if value is None:
        return None
    return value if len(sample) >= 20 else 0.6 * value


class BatchModel:
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
        self.durations = Sample()  # submit -> finish, seconds, of finished tasks
        self.predicted = Sample()  # predicted submit -> finish of running tasks (progress-based)
        self.estimates = Sample()  # the provider's own estimates (apimart estimated_time)
        self.queue_share = Sample()  # share of a task's duration spent before progress starts rising
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
            value = estimate(self.durations, q, least=50)
            return None if value is None else (value, 3)
        predicted = estimate(self.predicted, q, least=20)
        if predicted is not None:
            basis = (predicted, 2)
        else:
            estimated = estimate(self.estimates, q, least=3)
            if estimated is None:
                return None
            basis = (estimated, 1)
        finished = estimate(self.durations, q, least=5)
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


def observe(entry: Readings, model: BatchModel, status: TaskStatus, elapsed: float) -> bool:
    """Keep what a status answer, ``elapsed`` seconds after the submit, tells about the task's pace. Returns True
    when the model has just learned to turn single readings into finish times (tasks read before are worth
    planning again)."""
    if status.eta is not None and status.eta > 0:
        if entry.eta is None:
            model.estimates.add(status.eta)
        entry.eta = status.eta
    progress = status.progress
    if progress is not None and 0 < progress < 100:
        model.progress_seen = True
        if entry.progress0 is None:
            entry.progress0, entry.time0 = progress, elapsed
        elif progress > (entry.progress1 or entry.progress0):
            entry.progress1, entry.time1 = progress, elapsed
            if not entry.measured and progress - entry.progress0 >= model.SHARE_SPAN:
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
                model.add_share(min(max(start / total, 0.0), 0.9), start_error / total)
                return len(model.queue_share) == model.SHARES_NEEDED
    return False


def predict(entry: Readings, model: BatchModel) -> tuple[float, float] | None:
    """``(seconds from submit to the predicted finish, uncertainty in seconds)`` from the most precise evidence
    at hand, or ``None`` when there is none. Progress comes in whole points, so a reading ``p`` means
    somewhere in ``[p, p + 1)``: half a point up is the best guess, half a point either way its error."""
    candidates: list[tuple[float, float]] = []
    p0, t0, p1, t1 = entry.progress0, entry.time0, entry.progress1, entry.time1
    if p0 is not None and p1 is not None and t1 > t0:
        rate = (p1 - p0) / (t1 - t0)
        left = (99.5 - p1) / rate
        # The rate is uncertain by about a point over the points gained.
        candidates.append((t1 + left, left / (p1 - p0) + 0.5 / rate + TIMING))
    if p0 is not None and t0 > 0:
        shares = model.queue_share
        share = shares.quantile(0.5, least=model.SHARES_NEEDED)
        done = (p0 + 0.5) / 100.0
        if share is not None:
            # progress = (t - share * T) / ((1 - share) * T)  =>  T = t / (share + (1 - share) * progress)
            scale = share + (1.0 - share) * done
            total = t0 / scale
            spread = max(SHARE_SIGMAS * model.share_spread(), SHARE_FLOOR)
            # d total / d progress and d total / d share, times their errors.
            error = total * ((1.0 - share) * 0.005 + (1.0 - done) * spread) / scale
            candidates.append((total, error + TIMING))
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
        typical = model.typical()
        if typical is not None:
            candidates.append((typical, 0.5 * typical))
    return min(candidates, key=lambda c: c[1]) if candidates else None


def finished_duration(entry: Readings, model: BatchModel, total: float, last_seen: float) -> float:
    """How long a task that was found finished ``total`` seconds after its submit really took; ``last_seen`` is
    when it was last seen still going."""
    p0, t0, p1, t1 = entry.progress0, entry.time0, entry.progress1, entry.time1
    if p0 is not None and p1 is not None and t1 > t0:
        rate = (p1 - p0) / (t1 - t0)
        return min(total, t1 + (99.5 - p1) / rate)  # the line knows the finish better than our late look
    # Somewhere between the last look and this one: where a precise prediction put it, else the middle, which
    # errs early when the looks were far apart (found finished at its first look: anything up to now).
    prediction = predict(entry, model) if p0 is not None else None
    if prediction is not None and prediction[1] < 0.2 * total:
        return min(max(prediction[0], last_seen), total)
    return (total + last_seen) / 2
