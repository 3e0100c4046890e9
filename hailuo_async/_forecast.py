"""The forecaster: when each task may finish, learned from the batch and checked against what happens. Pure: no
I/O, no clock of its own, randomness only from an injected :class:`random.Random`.

Data flow: every status answer the poller receives goes through :meth:`Forecaster.observe` (a task's progress
readings and the provider's ``estimated_time``); every finished task goes through :meth:`Forecaster.finished`,
which turns its duration and its readings into samples; the planner (:mod:`._planner`) asks
:meth:`Forecaster.forecast` for a task's finish *conditioned on it still running* and aims the next check from it.

Every source predicts the same way: the finish ``F`` (seconds since submit) is ``offset + scale * M`` where the
task supplies ``offset`` and ``scale`` and ``M`` is drawn from what finished tasks of the batch showed:

- **durations**: ``F = M``; ``M`` from the finished tasks' durations, with the early "probe" tasks still running
  counted as censored (Kaplan-Meier), so the first finishes of a batch are not mistaken for the typical one;
- **estimate**: the provider's ``estimated_time`` ``e`` read at ``t``, as a whole (``F = e * M``) and as what is
  left (``F = t + e * M``): whichever the provider means, one of the two samples comes out narrow;
- **progress**: a reading of ``p`` percent at ``t``: ``F = t * M``, ``M`` from finished tasks' readings near
  ``p``. This reads any progress shape (linear, steps, concave, convex, stalling, long queueing) the same way: the
  batch's finished tasks show how its progress maps to time;
- **line**: the task's own pace between two readings, ``(t0, p0)`` and ``(t1, p1)``: at that pace it ends at
  ``L = t1 + (100 - p1) * (t1 - t0) / (p1 - p0)``, and ``F = t1 + (L - t1) * M``. It needs no finished task at
  the same progress, so it serves a batch's first wave; ``M`` learns how far off a straight line the shape is.

Each sample is read *conditioned on the task still running* at its last check, so a task that has outlived what
its peers did falls back to the provider's loop (the planner's contract) instead of trusting a stale guess: a task
*overdue* by any learned source but the durations (fewer than :data:`LEAST` of its multipliers, finished or still
running, lie beyond it) is polled on the beat, whatever the others say, since a source that describes the batch well
(the estimate a provider gives, where it means the whole time) knows the task should have ended by now, and another
(the same estimate read as the time left) may not. A multiplier forecasts only tasks at most :data:`SCALE_REACH`
times the scale it was learned at, so the errors it carries in seconds are not multiplied with it, and every low
quantile comes as much earlier as the finishes it was learned from may be off (a finish is known only between the
check that last saw the task going and the one that found it ended). The narrowest
available source wins. Sources are scored on "audit" tasks (polled like a plain loop, so their finish is
known within the aimed lag): a source whose low quantile misses more often than promised is read at a lower
quantile, and dropped while it misses far too often.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Collection
from typing import Literal, Protocol

from ._models import TaskState, TaskStatus
from ._survival import LEAST, ByProgress, Near, Sample, Survival

__all__ = ["Finish", "Forecaster", "Readings", "Role"]

Role = Literal["probe", "audit", "planned"]
"""How a task is polled: like a plain loop (the first "probe" tasks, a random few "audit" ones) or as planned."""

RISK = 0.03
"""Chance accepted, per check, that a task finished more than the aimed lag before that check: the planner aims each
check at this quantile of the task's finish (plus the lag)."""
SPREAD_RISK = 0.02
"""Most chance, per chance of ending before it, that a check past the beat finds a task ended more than ``max_lag``
before (see ``_spread_risk``)."""
RISK_ALLOWANCE = 0.02
"""A task's chance, over its life, of being found late by checks that take more risk than :data:`SPREAD_RISK`
allows (see ``_spread_risk``)."""
SPREAD_LEVELS = (1.0, 1.0 / 3.0, 0.1, 1.0 / 30.0, 0.01, 1.0 / 300.0)
"""Shares of a source's level its low quantile may be read at, the highest first, so that the risk of a check past
the beat stays within its share (see ``_spread_risk``)."""
WATCHED = 48
"""Most running tasks whose sightings are counted as censored values ("took longer than that so far"): the probes
and the running audits, checked like a loop, so their last sightings are fresh."""
FRAMES = 12
"""Predictions kept per task, to learn from once it finishes: what each source would have said at its checks."""
NEIGHBOURS = 12
"""Finished tasks' readings, nearest in progress to a running task's, that its progress source reads."""
REACH = 5
"""Most progress points between a running task's reading and the finished readings its progress source reads."""
SPAN = 10
"""Least progress points between two readings for a line through them."""
LINE_REACH = 10
"""Most progress points between where a running task's line is drawn to and the finished lines its line source
reads."""
SCALE_REACH = 2.0
"""How much larger than the task a multiplier was learned from a task may be and still be forecast with it: a
multiplier carries errors that are a number of seconds (a finish known within a beat, an estimate in whole seconds,
progress in whole points), a share of the scale it was learned at; forecasting a task ten times as long with it makes
them ten times as large. So the multipliers of a batch's quick tasks never set the checks of its long ones (a batch
mixing 6-second and 10-second videos at two resolutions), whose sources wait for tasks of their own scale to finish.
The scale is what the source multiplies: the estimate, the time of the progress reading, the time left at the line's
pace."""
PRIOR_LINE = (0.25, 2.0)
"""Range assumed for a line's multiplier before any task has finished: a task may end in a quarter of the time its
own pace so far says (progress that speeds up does that), or take twice as long. It lets a lone task be checked
some times rather than on every beat."""
PRIOR_ESTIMATE = (0.15, 2.0)
"""Range assumed for the multiplier of the provider's estimate before any task has finished. Estimates four times
too long are seen in the wild (apimart has answered ``estimated_time`` 600 for an ``actual_time`` of 155), and
noisier ones go further: a range that stopped at a quarter had a batch's first checks come seconds late."""
ESTIMATE_LEAST = 4.0
"""Least ``estimated_time`` (seconds) the estimate sources read. Providers give it in whole seconds, so a smaller one
may be off by a quarter of itself or more from rounding alone: a multiplier learned from an estimate of 1 s (a
5-second task: 5) says nothing of a task estimated at 2 s (8 seconds: 4), yet both are estimates a quarter of the
truth. Real generations take tens of seconds or more."""
SCORE_DECAY = 0.98
"""Weight each older score keeps when a new one comes: a source's record follows the provider as it changes."""
SCORED = 15.0
"""Weight of scores a source needs before its record counts."""
DROP = 4.0
"""A source missing more than this many times the promised rate is not used (its weight is lost)."""
LATE_ODDS = 10.0
LATE_ALARM = 9.0
LATE_FADE = 0.3
"""Every task, not only the audited few, tells whether a source's forecasts come late (a provider faster than what
the batch showed so far): each check aimed from it had a chance, as the source said, of finding the task ended. The
log-likelihood ratio of "the odds were really ``LATE_ODDS`` times those" against "as said" is summed over those
checks (CUSUM). Past ``LATE_ALARM`` (odds of ``e ** 9``, some 8,000 to one) the source is dropped: it is not used,
the checks already aimed from forecasts are planned again, and what it learned before the sum last rose from 0 (the
CUSUM's estimate of when the provider changed) is forgotten. It is used again once the sum has faded to 0 by
``LATE_FADE`` per finish (some thirty finishes), having learned meanwhile from what the provider does now. While the
source is used, only the checks that find tasks going bring the sum down: finishes do not, or a batch finishing many
old tasks as it starts new, faster ones would fade the evidence as fast as it comes. A check given a 5 % chance that
finds the task ended adds 1.9 (one that finds it going takes 0.4 off), one given a third adds 0.9: a source whose
forecasts come a whole spread late is dropped within five to ten such tasks; a truthful one, in a few batches of a
hundred (at 1,500 checks each), costing checks on the beat until it is back, not lag. While the sum is above 0, the
checks aimed from the source reach less far (``Planner.reach``): a provider that got faster than the batch showed
is caught by checks still near enough to tell, not a whole ``max_interval`` after the evidence began."""


class Readings(Protocol):
    """One task's evidence, kept by the poller: its latest progress readings strictly between 0 and 100 as
    ``(seconds since submit, percent)`` (after one of 0: the latest answer that found it queued, if one did), the
    provider's first estimate as ``(seconds since submit, seconds)``,
    the low quantiles each source gave at its checks when the task is audited, when (seconds since submit) it
    was last seen still going (moved only through :meth:`Forecaster.saw`, which keeps what is read from the watched
    tasks current), and the frames its sources predicted from (``(source, offset, scale, percent)``,
    the latest :data:`FRAMES`), each scored against its finish."""

    readings: list[tuple[float, int]]
    estimate: tuple[float, float] | None
    trials: list[tuple[str, float]] | None
    last_seen: float
    frames: list[tuple[int, float, float, int]]


class Finish:
    """A forecast of one task's finish, in seconds since its submit, given it was still running at its last check:
    ``low`` is its :data:`RISK` quantile, ``median`` its median and ``high`` its ``1 - RISK`` quantile (``None``:
    beyond what the batch has seen), ``source`` which source said so. ``prior``: read with the source's prior (few
    tasks have finished). ``bound``: only "not before ``low``": probes as old were seen running there, and no task
    has finished yet. ``overdue``: the task has outlived what the source's multipliers allow (``low`` is the floor);
    it is to be polled on the beat."""

    __slots__ = ("_high", "_reading", "basis", "bound", "charged", "low", "median", "overdue", "prior", "source")

    def __init__(
        self,
        low: float,
        median: float | None,
        source: str,
        *,
        prior: bool = False,
        bound: bool = False,
        reading: tuple[Survival, float, Frame] | None = None,
        overdue: bool = False,
        basis: tuple[float, float] = (RISK, 0.0),
    ) -> None:
        self.overdue = overdue
        # What ``low`` was read from, at which level, and how much earlier still it was put.
        self.basis: tuple[tuple[Survival, float, Frame] | None, float, float] = (reading, *basis)
        self.charged = 0.0  # the risk taken beyond the spread's share, to be charged to the task's allowance
        self.low = low
        self.median = median
        self.source = source
        self.prior = prior
        self.bound = bound
        self._reading = reading  # what ``high`` is read from, when asked: most forecasts are never asked
        self._high: float | None = None

    @property
    def high(self) -> float | None:
        """The ``1 - RISK`` quantile, where the batch has seen that far."""
        if self._reading is not None:
            survival, least, (offset, scale) = self._reading
            self._reading = None
            quantile = survival.quantile(least, 1.0 - RISK)
            self._high = None if quantile is None else offset + scale * quantile
        return self._high

    def going(self, moment: float, since: float | None = None) -> float:
        """The chance, as this forecast's reading says, that the task is still going at ``moment`` given it was at
        ``since`` (by default where the forecast was read from); 1 without a reading."""
        reading = self.basis[0]
        if reading is None:
            return 1.0
        survival, least, (offset, scale) = reading
        top = survival.level_at(least if since is None else (since - offset) / scale)
        return survival.level_at((moment - offset) / scale) / top if top > 0.0 else 1.0

    def ended_by(self, moment: float, since: float) -> float | None:
        """The chance, as this forecast says, that the task has ended by ``moment`` given it was going at ``since``:
        read as its low quantile was, ``slack`` seconds earlier than the reading (so a forecast whose low quantile
        was put earlier to allow for rough finishes or whole progress points is not scored as late for that); and
        never below what the values beyond ``since`` can tell (the plus-one rule: ``n`` values cannot say a chance
        is below ``1 / (n + 1)``: that none of the twelve nearest lines ended by then is not a chance of 0).
        ``None`` without a reading (a low quantile another source brought down): no chance was given."""
        reading, _, slack = self.basis
        if reading is None:
            return None
        survival, _, (offset, scale) = reading
        beyond = len(survival.values) - bisect.bisect_right(survival.values, (since + slack - offset) / scale)
        return max(1.0 - self.going(moment + slack, since + slack), 1.0 / (beyond + 1))

    def allowance_after(self, allowance: float, moment: float) -> float:
        """A task's risk allowance (:data:`RISK_ALLOWANCE` at most, per chance of still running) once a check aimed
        from this forecast at ``moment`` (seconds since its submit) finds it still going: less what was charged,
        divided by the chance, given the reading, that it would still be going then. Unchanged (the same object)
        where nothing was charged: most tasks never take that risk, and a float per task costs memory."""
        if not self.charged:
            return allowance
        return min(RISK_ALLOWANCE, max(0.0, allowance - self.charged) / max(self.going(moment), 0.01))

    @property
    def chance_given(self) -> bool:
        """Whether it reads a distribution of its own (one whose low quantile another source brought down does
        not): only then can :meth:`ended_by` tell the chance it gave."""
        return self.basis[0] is not None

    @property
    def width(self) -> float:
        return math.inf if self.median is None else self.median - self.low

    def __repr__(self) -> str:
        return f"Finish(low={self.low:.2f}, median={self.median}, source={self.source!r})"


Frame = tuple[float, float]
"""How a source maps its multiplier to a finish for one task: ``F = offset + scale * M``."""


ORIGIN = (0.0, 0)
"""The submit, as a progress reading: with one reading, the pace since the submit sets a point's time."""


def _line_end(first: tuple[float, int], last: tuple[float, int]) -> float | None:
    """Where the line through two progress readings reaches 100 %, if they are far enough apart to draw one."""
    (t0, p0), (t1, p1) = first, last
    if p1 - p0 < SPAN or t1 <= t0:
        return None
    return t1 + (100.0 - p1) * (t1 - t0) / (p1 - p0)


class _Source:
    """One way of predicting a finish: how it frames a task (``frame``), the multipliers finished tasks showed,
    and the record of how well its low quantile held. A source with a ``prior`` (a range of multipliers) predicts
    with it too, wide, until :data:`LEAST` tasks have finished."""

    def __init__(
        self,
        name: str,
        frame: Callable[[Readings], Frame | None],
        prior: tuple[float, float] | None = None,
    ) -> None:
        self.name = name
        self.frame = frame
        self.sample = Sample()
        self.prior = [] if prior is None else [prior[0] + (prior[1] - prior[0]) * i / 32 for i in range(33)]
        self.misses = 0.0
        self.scored = 0.0
        self.drift = 0.0  # the evidence that its aimed checks find tasks ended more often than it said (LATE_ODDS)
        self.dropped = False  # since ``drift`` passed LATE_ALARM, until it fades to 0
        self.rise: tuple[int, ...] = ()  # the versions of what it learns from when that evidence last rose from 0
        self._cached_by: dict[float, tuple[tuple[int, int], Survival, bool]] = {}

    def survival(self, watched: Collection[Readings], version: int, min_scale: float = 0.0) -> tuple[Survival, bool]:
        """The multipliers read with the watched tasks still running censored (``version`` counts their changes);
        whether the prior is in. Read again once a thirty-second more of the sample, or a quarter of the watched
        tasks, is new: a reading a little stale says the same, and rebuilding on every check would cost the most
        of a check."""
        cached = self._cached_by.get(min_scale)
        if (
            cached is None
            or self.sample.version - cached[0][0] >= max(1, len(self.sample) // 32)
            or version - cached[0][1] >= max(1, len(watched) // 4)
        ):
            censored: list[float] = []
            for entry in watched:
                frame = self.frame(entry)
                if frame is not None and frame[1] >= min_scale:
                    censored.append((entry.last_seen - frame[0]) / frame[1])
            values = self.sample.at_least(min_scale)
            prior = len(values) < LEAST and bool(self.prior)
            cached = self._cached_by[min_scale] = (
                (self.sample.version, version),
                Survival(values + self.prior if prior else values, censored),
                prior,
            )
        return cached[1], cached[2]

    def score(self, missed: bool) -> None:
        self.misses = self.misses * SCORE_DECAY + missed
        self.scored = self.scored * SCORE_DECAY + 1.0

    def aimed(self, chance: float, ended: bool) -> None:
        """A check aimed from this source's forecast, with this chance of finding the task ended, did or did not:
        the log-likelihood ratio of "its forecasts come late" (the odds were really :data:`LATE_ODDS` times those
        given) against "they hold" is added up (CUSUM: never below 0)."""
        chance = min(max(chance, 1e-3), 1.0 - 1e-3)
        odds = LATE_ODDS * chance / (1.0 - chance)
        late = odds / (1.0 + odds)
        step = math.log(late / chance) if ended else math.log((1.0 - late) / (1.0 - chance))
        self.drift = max(0.0, self.drift + step)
        self.dropped = self.dropped or self.drift > LATE_ALARM

    def fade(self) -> None:
        """A task finished: a source dropped for forecasting late fades its record, and is used again once that is
        gone (having learned meanwhile from what the provider does now)."""
        if self.dropped:
            self.drift = max(0.0, self.drift - LATE_FADE)
            self.dropped = self.drift > 0.0

    def late(self) -> bool:
        """Whether its aimed checks found tasks ended far more often than it said they would, and that record has
        not yet faded: its forecasts come late (the provider got faster than what the batch showed so far)."""
        return self.dropped

    def level(self) -> float | None:
        """The quantile to read this source at: :data:`RISK` while it keeps its promise, lower while it misses,
        ``None`` (not used) while it misses far too often, or while its aimed checks find tasks ended far more
        often than it said they would."""
        if self.late():
            return None
        if self.scored < SCORED:
            return RISK
        rate = self.misses / self.scored
        if rate <= RISK:
            return RISK
        if rate > DROP * RISK:
            return None
        return RISK * RISK / rate


def _durations(entry: Readings) -> Frame:
    return (0.0, 1.0)


def _estimate(entry: Readings) -> Frame | None:
    estimate = entry.estimate
    return None if estimate is None or estimate[1] < ESTIMATE_LEAST else (0.0, estimate[1])


def _estimate_left(entry: Readings) -> Frame | None:
    estimate = entry.estimate
    return None if estimate is None or estimate[1] < ESTIMATE_LEAST else estimate


def _line(entry: Readings) -> Frame | None:
    """The task's recent pace: the line from the latest reading back to the last one at least :data:`SPAN` points
    below it. Where on the shape the line is drawn then depends on the progress it reaches, not on when the task
    happened to be read first, so lines drawn to the same progress are alike across the batch."""
    readings = entry.readings
    if not readings:
        return None
    last = readings[-1]
    for earlier in reversed(readings[:-1]):
        if earlier[1] and last[1] - earlier[1] >= SPAN:  # not from a reading of 0: the start lies after it
            end = _line_end(earlier, last)
            return None if end is None else (last[0], end - last[0])
    return None


def _progress(entry: Readings) -> Frame | None:
    """The progress source's frame: the time since the task was last seen not started (its submit, unless an answer
    found it queued), up to its latest reading."""
    readings = entry.readings
    if not readings:
        return None
    start = readings[0][0] if readings[0][1] == 0 else 0.0
    return (start, readings[-1][0] - start) if readings[-1][0] > start else None


class Forecaster:
    """What one poller has learned about its tasks' finishes."""

    PROBES = 30
    """First tasks tracked: until some task finishes, how long they have been seen running bounds how early the
    others can finish (the others wait for that news rather than being checked)."""
    AUDIT = 0.02
    """Share of the other tasks polled like a plain loop, to score every source against a finish known within a
    beat (at most :data:`WATCHED` running at once, probes included)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random(random.getrandbits(64))  # seeded by `random.seed`
        self.durations = _Source("durations", _durations)
        self.estimate = _Source("estimate", _estimate, PRIOR_ESTIMATE)
        self.estimate_left = _Source("estimate left", _estimate_left, PRIOR_ESTIMATE)
        self.line = _Source("line", _line, PRIOR_LINE)
        self.progress = _Source("progress", _progress)
        self.sources = (self.durations, self.estimate, self.estimate_left, self.line, self.progress)
        self.progress_readings = ByProgress()
        self.line_readings = ByProgress()  # the line's multipliers, by the progress its line was drawn to
        self._learned: dict[str, tuple[Sample | ByProgress, ...]] = {
            source.name: (source.sample,) for source in self.sources
        }  # what each source learns from
        self._learned[self.line.name] = (self.line.sample, self.line_readings)
        self._learned[self.progress.name] = (self.progress_readings,)
        self._by_name = {source.name: source for source in self.sources}
        self.probes: dict[str, Readings] = {}  # probes still running
        self.watched: dict[str, Readings] = {}  # probes and audits still running
        self._watched_ids: set[int] = set()  # their entries' ids: whether an entry is watched, at once
        self._probe_age: tuple[int, float] | None = None  # (watch_version, the probes' median age) last read
        self.watch_version = 0  # counts changes of the watched tasks: what was read from them holds while unchanged
        self.probes_taken = 0
        self.finishes = 0  # tasks finished so far
        self.alarms = 0  # times a source was dropped, late or by the audits (the poller then plans aimed checks again)
        self.finish_error = 0.0  # give or take how much (s) the finishes learned from were known, smoothed

    # -- what each task is -------------------------------------------------------------------------------

    def enrol(self, task_id: str, entry: Readings) -> Role:
        """Decide a new task's role: ``"probe"`` (among the first), ``"audit"`` (a random few) or ``"planned"``."""
        role: Role = "planned"
        if self.probes_taken < self.PROBES:
            self.probes_taken += 1
            self.probes[task_id] = entry
            role = "probe"
        elif len(self.watched) < WATCHED and self.rng.random() < self.AUDIT:
            role = "audit"
        if role != "planned":
            self._watch(task_id, entry)
        return role

    def recruit(self, task_id: str, entry: Readings) -> bool:
        """Make a task waiting for the first finish a probe too, while no task has finished and fewer than
        :attr:`PROBES` more have been taken (whether it was)."""
        if self.finishes or not self.probes or self.probes_taken >= 2 * self.PROBES or task_id in self.watched:
            return False
        self.probes_taken += 1
        self.probes[task_id] = entry
        self._watch(task_id, entry)
        return True

    def _watch(self, task_id: str, entry: Readings) -> None:
        self.watched[task_id] = entry
        self._watched_ids.add(id(entry))
        self.watch_version += 1

    def forget(self, task_id: str) -> None:
        """A task is no longer tracked (ended, or given up): it no longer tells how long tasks run."""
        self.probes.pop(task_id, None)
        entry = self.watched.pop(task_id, None)
        if entry is not None:
            self._watched_ids.discard(id(entry))
            self.watch_version += 1

    # -- evidence ------------------------------------------------------------------------------------------

    @staticmethod
    def observe(entry: Readings, status: TaskStatus, elapsed: float) -> None:
        """Keep what a status answer ``elapsed`` seconds after the submit tells about the task's pace."""
        if entry.estimate is None and status.eta is not None and status.eta > 0:
            entry.estimate = (elapsed, status.eta)
        progress = status.progress
        readings = entry.readings
        if (status.state is TaskState.QUEUED and not readings) or (readings and readings[-1][1] == 0 and not progress):
            # Not started yet: the latest such answer of a task seen queued is kept as a reading of 0, where the
            # progress source counts its time from, so an unknown, varying wait in a queue is not read as slow
            # progress (only for tasks seen queued: a tuple per task counts at 100,000 of them).
            readings[:] = [(elapsed, 0)]
            return
        if progress is not None and 0 < progress < 100:
            if readings and readings[-1][1] == progress:
                readings[-1] = (elapsed, progress)  # stalled: the latest reading of that level says most
            else:
                readings.append((elapsed, progress))
                if len(readings) > 4 + (readings[0][1] == 0):
                    del readings[1 + (readings[0][1] == 0)]  # the first readings stay: the longest line is steadiest

    def saw(self, entry: Readings, elapsed: float) -> None:
        """A status answer ``elapsed`` seconds after the submit found the task still going (after :meth:`observe`):
        keep when, and the frames its sources predict from now."""
        entry.last_seen = elapsed
        if id(entry) in self._watched_ids:
            self.watch_version += 1
        self.remember(entry)

    def remember(self, entry: Readings) -> None:
        """Keep the frames the progress-reading sources predict from for this task now, to learn from them once it
        finishes (the others' frames do not change while it runs: they are read at its finish)."""
        if not entry.readings:
            return
        frames = entry.frames
        latest = entry.readings[-1][1]
        for index, source in enumerate(self.sources):
            if source is not self.line and source is not self.progress:
                continue
            frame = source.frame(entry)
            if frame is None:
                continue
            item = (index, frame[0], frame[1], latest)
            if item not in frames:
                frames.append(item)
        if len(frames) > FRAMES:
            del frames[: len(frames) - FRAMES]

    def finished(self, task_id: str, entry: Readings, duration: float, error: float = 0.0) -> None:
        """A task ended ``duration`` seconds after its submit, give or take ``error`` (as well as the poller can
        tell): learn from every prediction made for it, and score the sources' low quantiles if it was audited. A
        prediction teaches only if the finish is known to within a quarter of the time it had still to run:
        multipliers of the last moments would otherwise be mostly that error."""
        self.forget(task_id)
        self.finishes += 1
        for source in self.sources:
            source.fade()
        self.finish_error += 0.1 * (error - self.finish_error)
        self.durations.sample.add(duration)
        for source in (self.estimate, self.estimate_left):
            frame = source.frame(entry)
            if frame is not None:
                source.sample.add((duration - frame[0]) / frame[1], frame[1])
        for index, offset, scale, progress in entry.frames:
            if scale < 4.0 * error:
                continue
            multiplier = (duration - offset) / scale
            if self.sources[index] is self.progress:
                self.progress_readings.add(progress, multiplier, scale)
            else:
                self.sources[index].sample.add(multiplier, scale)
                self.line_readings.add(progress, multiplier, scale)
        if entry.trials:
            used = [source for source in self.sources if source.level() is not None]
            for name, low in entry.trials:
                self._by_name[name].score(duration < low)
            if any(source.level() is None for source in used):
                self.alarms += 1  # an audit dropped a source: checks aimed from it are planned again too

    # -- forecasts -----------------------------------------------------------------------------------------

    def candidates(self, entry: Readings, floor: float) -> list[Finish]:
        """What every usable source says of the finish of a task still running ``floor`` seconds after its submit."""
        found: list[Finish] = []
        watched = self.watched.values()
        # Progress comes in whole points: a reading of p means somewhere in [p, p + 1), so whatever is read from
        # progress may be off by the time one point takes, whatever the multipliers say.
        point = _point_time(entry)
        for source in (self.durations, self.estimate, self.estimate_left, self.line):
            level = source.level()
            frame = source.frame(entry)
            if level is None or frame is None:
                continue
            min_scale = _min_scale(frame[1]) if source is not self.durations else 0.0
            if source is self.line and len(source.sample) >= LEAST:
                forecast = self._read_line(entry, frame, floor, level, point)
            else:
                survival, prior = source.survival(watched, self.watch_version, min_scale)
                # What was learned from finishes known give or take some time is off by as much: the low quantile
                # comes that much earlier (the line's is off by the time a progress point takes).
                slack = point if source is self.line else self.finish_error
                forecast = _read(source.name, survival, frame, floor, level, prior, slack)
            if forecast is not None:
                found.append(forecast)
            elif (
                source is self.durations
                and not source.sample.sorted
                and self.probes
                and entry not in self.probes.values()
            ):
                # Only probes still going: not before the age half of them have been seen to reach.
                found.append(Finish(self._probes_median_age(), None, source.name, bound=True))
        forecast = self._read_progress(entry, floor)
        if forecast is not None:
            found.append(forecast)
        return found

    def _probes_median_age(self) -> float:
        """The age half of the probes still going have been seen to reach (read again once they change)."""
        if self._probe_age is None or self._probe_age[0] != self.watch_version:
            ages = sorted(probe.last_seen for probe in self.probes.values())
            self._probe_age = (self.watch_version, ages[len(ages) // 2])
        return self._probe_age[1]

    def forecast(
        self,
        entry: Readings,
        floor: float,
        step: float = 0.0,
        allowance: float = math.inf,
        useful: float = -math.inf,
    ) -> Finish | None:
        """The best forecast of the finish of a task still running ``floor`` seconds after its submit, or ``None``
        when nothing usable is known or a learned source but the durations finds it overdue (the planner then polls
        it like a plain loop): the narrowest of those learned from finished tasks; else the narrowest read with a
        prior, not before the probes' bound; else that bound.
        A forecast whose low quantile lies past the high quantile of another source learned from finished tasks is
        contradicted by it (that source is all but sure the task ends before): its low quantile comes down to that
        source's."""
        learned: Finish | None = None
        assumed: Finish | None = None
        bound: Finish | None = None
        found = _one_reading(self.candidates(entry, floor), self.estimate.name, self.estimate_left.name)
        if any(forecast.overdue and forecast.source != self.durations.name for forecast in found):
            return None
        found = [forecast for forecast in found if not forecast.overdue]
        for forecast in found:
            if forecast.bound:
                bound = forecast
            elif forecast.prior:
                assumed = forecast if assumed is None or forecast.width < assumed.width else assumed
            elif learned is None or forecast.width < learned.width:
                learned = forecast
        best = learned
        if best is None and assumed is not None and bound is not None and bound.low > assumed.low:
            # Two floors, the probes' and the prior's: the later one binds.
            median = None if assumed.median is None else max(bound.low, assumed.median)
            best = Finish(bound.low, median, assumed.source, prior=True)
        best = best or assumed or bound
        if best is None or best.bound:
            return best
        best = _spread_risk(best, floor, step, allowance, useful)
        low = min(
            [best.low]
            + [
                other.low
                for other in found
                # high >= low: only a source whose low comes first can be sure the task ends before best.low
                if not (other.bound or other.prior) and other.low < best.low and _before(other.high, best.low)
            ]
        )
        return best if low == best.low else Finish(low, best.median, best.source, prior=best.prior)

    def _read_progress(self, entry: Readings, floor: float) -> Finish | None:
        """The progress source: the multipliers of the :data:`NEIGHBOURS` finished readings nearest the task's
        latest in progress, with the watched tasks' readings as near censored."""
        level = self.progress.level()
        frame = _progress(entry)
        if level is None or frame is None:
            return None
        survival = self.progress_readings.read(
            entry.readings[-1][1], self.watch_version, self._progress_values, _min_scale(frame[1])
        )
        if survival is None:
            return None
        return _read(self.progress.name, survival, frame, floor, level, False, _point_time(entry))

    def _read_line(self, entry: Readings, frame: Frame, floor: float, level: float, point: float) -> Finish | None:
        """The line source once tasks have finished: the multipliers of the :data:`NEIGHBOURS` finished lines
        drawn to the progress nearest the task's latest (how far off its pace a run ends depends on where on its
        shape the line stops: convex progress speeds up, concave slows down, more the earlier the line), with the
        watched tasks' lines drawn as near counted as censored."""
        survival = self.line_readings.read(
            entry.readings[-1][1], self.watch_version, self._line_values, _min_scale(frame[1])
        )
        if survival is None:
            return None
        return _read(self.line.name, survival, frame, floor, level, False, point)

    def _line_values(self, progress: int, min_scale: float = 0.0) -> Near:
        nearest = self.line_readings.nearest(progress, NEIGHBOURS, min_scale)
        if nearest is None or nearest[1] > LINE_REACH:
            return None
        values, reach = nearest
        censored: list[float] = []
        for other in self.watched.values():
            frame = _line(other)
            if frame is not None and frame[1] >= min_scale and abs(other.readings[-1][1] - progress) <= reach:
                censored.append((other.last_seen - frame[0]) / frame[1])
        return values, censored

    def _progress_values(self, progress: int, min_scale: float = 0.0) -> Near:
        """The finished readings' multipliers nearest ``progress``, and the watched tasks' readings as near, as
        censored ones; ``None`` when too few are near."""
        nearest = self.progress_readings.nearest(progress, NEIGHBOURS, min_scale)
        if nearest is None or nearest[1] > REACH:
            return None
        values, reach = nearest
        censored = [
            other.last_seen / at
            for other in self.watched.values()
            for at, seen in other.readings
            if at >= min_scale and at > 0 and abs(seen - progress) <= reach
        ]
        return values, censored

    def aimed(self, entry: Readings, floor: float, moment: float, *, ended: bool, source: str) -> bool:
        """A check aimed from ``source``'s forecast, planned when the task was last seen ``floor`` seconds after its
        submit and answered ``moment`` seconds after it, found the task ended or still going: count it to that
        source's record, with the chance the source gives of its ending by then (by when the check was answered,
        not aimed: a check held back by a rate limit finds more tasks ended, and says nothing of the forecast).
        The source that aimed the check is scored, not whichever forecasts the task best by the time the answer
        comes: blaming a sharper source that has learned enough since for a wider one's late aim would drop a
        source that tells the truth. ``source`` is ``""`` for a forecast that gave no chance of its own (not
        scored). Whether the source is trusted (``False`` if it no longer forecasts the task)."""
        if not source:
            return True
        aimer = self._by_name[source]
        forecast = next((found for found in self.candidates(entry, floor) if found.source == source), None)
        if forecast is None or forecast.prior:
            return False
        trusted = not aimer.late()
        chance = forecast.ended_by(moment, floor)
        if chance is None:
            return trusted
        learned = self._learned[aimer.name]
        if aimer.drift == 0.0:
            aimer.rise = tuple(store.version for store in learned)
        aimer.aimed(chance, ended)
        if trusted and aimer.late():
            # The provider changed about when the evidence began to rise (the CUSUM's estimate of the change):
            # what the source learned before says nothing of what it does now.
            self.alarms += 1
            for store, version in zip(learned, aimer.rise, strict=True):
                store.forget_before(version)
        return trusted

    def suspicion(self, source: str) -> float:
        """The evidence that ``source``'s forecasts come late: the sum :data:`LATE_ODDS` describes, 0 while its aimed
        checks find tasks ended as often as it said (0 for a name that is no source)."""
        found = self._by_name.get(source)
        return 0.0 if found is None else found.drift

    def trials(self, entry: Readings, floor: float) -> list[tuple[str, float]]:
        """Every usable source's low quantile for an audited task, to score once its finish is known."""
        return [
            (forecast.source, forecast.low)
            for forecast in self.candidates(entry, floor)
            if not (forecast.bound or forecast.overdue)
        ]


def _min_scale(scale: float) -> float:
    """The least scale a multiplier must have been learned at to forecast a task of ``scale``: the power of two at
    or under ``scale / SCALE_REACH`` (a few thresholds, so that what was read at each is kept and shared)."""
    if scale <= 0.0 or not math.isfinite(scale):
        return 0.0
    return 2.0 ** math.floor(math.log2(scale / SCALE_REACH))


def _before(moment: float | None, bound: float) -> bool:
    return moment is not None and moment < bound


def _one_reading(found: list[Finish], whole: str, left: str) -> list[Finish]:
    """The provider's estimate read both ways, as the whole time and as the time left: whichever it means, one
    reading is wrong, and until the audits tell which, the earlier of the two stands (the other is left out)."""
    pair = [forecast for forecast in found if forecast.source in (whole, left) and not forecast.bound]
    if len(pair) < 2 or pair[0].prior != pair[1].prior:
        return found
    later = max(pair, key=lambda forecast: forecast.low)
    return [forecast for forecast in found if forecast is not later]


def _read(
    name: str, survival: Survival, frame: Frame, floor: float, level: float, prior: bool, slack: float = 0.0
) -> Finish | None:
    """A source's forecast: its multipliers' quantiles above the floor, through the task's frame; the low quantile
    ``slack`` seconds earlier still (never before the floor)."""
    offset, scale = frame
    least = (floor - offset) / scale
    low = survival.quantile(least, level)
    if low is None:
        if (
            not prior
            and len(survival.times) >= LEAST
            and len(survival.values) - bisect.bisect_right(survival.values, least) < LEAST
        ):
            return Finish(floor, None, name, overdue=True)
        return None
    median = survival.quantile(least, 0.5)
    return Finish(
        max(floor, offset + scale * low - slack),
        None if median is None else offset + scale * median,
        name,
        prior=prior,
        reading=(survival, least, frame),
        basis=(level, slack),
    )


def _spread_risk(forecast: Finish, floor: float, step: float, allowance: float, useful: float) -> Finish:
    """The forecast with its low quantile read low enough that the task's chance of being found late stays within
    :data:`SPREAD_RISK` plus :data:`RISK_ALLOWANCE` over its whole life.

    A check aimed past the next beat risks finding the task ended more than ``max_lag`` before: given the task was
    running at ``floor``, the chance of that is the level ``a`` its low quantile was read at. Taken at every check,
    those chances add up: a task that could end any moment over a long spread (durations spread evenly, or an
    unknown amount of queueing) would be skipped past many beats, each at that risk, and far more than the contract
    allows would be found late. So a level is allowed where either

    - its risk is at most :data:`SPREAD_RISK` of the chance that the task ends before the check, which holds when
      the check comes no earlier than the ``a / SPREAD_RISK`` quantile (the highest of :data:`SPREAD_LEVELS` that
      does): such risks add up to at most :data:`SPREAD_RISK` over a life, whatever the spread; or
    - the task's ``allowance`` still covers it: the rest of :data:`RISK_ALLOWANCE`, per chance of still running,
      which the risk taken is then charged to (``charged``): one long skip where the forecast pins the finish down
      (a progress reading, or the wait for the batch's shortest duration), not one at every check.

    A forecast read through a prior is left as it is: the prior is wide on purpose, so its levels overstate the
    risk, and it stands only until a few tasks have finished. Nor is one whose low quantile comes before
    ``useful`` (seconds since the submit): the task is polled on the beat then, and a lower level only comes
    earlier still."""
    reading, level, slack = forecast.basis
    if reading is None or forecast.prior or step <= 0.0 or forecast.low < useful:
        return forecast
    survival, least, (offset, scale) = reading
    spread = 0.0
    for share in SPREAD_LEVELS:
        low = survival.quantile(least, level * share)
        if low is None or offset + scale * low - slack < useful:
            break
        covered = survival.quantile(least, min(level * share / SPREAD_RISK, 1.0 - RISK))
        if covered is not None and scale * (covered - low) <= step:
            spread = level * share
            break
    if spread >= level:
        return forecast
    chosen = max(spread, allowance)
    if chosen >= level:  # the allowance covers the forecast's own level (one read lower after misses): charged
        forecast.charged = level
        return forecast
    quantile = survival.quantile(least, chosen) if chosen > 0.0 else None
    low = floor if quantile is None else max(floor, min(forecast.low, offset + scale * quantile - slack))
    found = Finish(low, forecast.median, forecast.source, prior=forecast.prior, reading=reading, basis=(chosen, slack))
    found.charged = chosen if chosen > spread else 0.0
    return found


def _point_time(entry: Readings) -> float:
    """Seconds one progress point takes at the task's pace so far (0 without a reading)."""
    readings = entry.readings
    if not readings:
        return 0.0
    (t0, p0), (t1, p1) = (readings[0], readings[-1]) if len(readings) > 1 else (ORIGIN, readings[-1])
    return (t1 - t0) / (p1 - p0) if p1 > p0 and t1 > t0 else t1 / max(p1, 1)
