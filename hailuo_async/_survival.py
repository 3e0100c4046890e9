"""The statistics the forecaster reads: samples of what finished tasks showed, kept sorted, and their
Kaplan-Meier reading with the tasks still running counted as censored. Pure: no I/O, no clock, no randomness.

Data flow: :class:`~._forecast.Forecaster` adds every finished task's duration and multipliers to a :class:`Sample`
per source (or, for what progress readings showed, to a :class:`ByProgress`, kept by percent), and reads them as a
:class:`Survival` with the tasks it watches still running as censored values; :meth:`Survival.quantile` gives the
low quantile a check is aimed from, conditioned on the task still running.
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Callable, Iterable

__all__ = ["LEAST", "ByProgress", "Near", "Sample", "Survival"]

LEAST = 8
"""Tasks (finished or still running) a source needs to have seen beyond a task's floor to forecast it, and finished
tasks it needs before its prior (where it has one) is left out."""


class Sample:
    """The last ``size`` values of a quantity, kept sorted."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self.sorted: list[float] = []
        self._recent: collections.deque[tuple[float, float]] = collections.deque()
        self.version = 0  # counts additions: what was derived from the sample holds while it is unchanged

    def __len__(self) -> int:
        return len(self.sorted)

    def add(self, value: float, scale: float = math.inf) -> None:
        self.version += 1
        if len(self._recent) >= self._size:
            old, _ = self._recent.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        self._recent.append((value, scale))
        bisect.insort(self.sorted, value)

    def forget_before(self, version: int) -> None:
        """Keep only the values added after the sample's ``version`` was that (what the provider does now)."""
        while len(self._recent) > self.version - version:
            old, _ = self._recent.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        self.version += 1

    def at_least(self, scale: float) -> list[float]:
        """The values learned at a scale of at least ``scale``, sorted."""
        if scale <= 0.0:
            return self.sorted
        return sorted(value for value, learned in self._recent if learned >= scale)


class Survival:
    """A Kaplan-Meier reading of a quantity: values seen whole (finished tasks) and values known only to be larger
    than something (running tasks: "more than that so far"), so that a batch's first finishes, which are its fast
    ones, are not taken for the typical one."""

    def __init__(self, events: list[float], censored: Iterable[float]) -> None:
        self.censored = sorted(censored)
        marks = sorted([(value, 1) for value in events] + [(value, 0) for value in self.censored])
        self.values = [value for value, _ in marks]
        at_risk = len(marks)
        level = 1.0
        self.times: list[float] = []
        self.levels: list[float] = []  # S(t) just after each event time
        for value, event in marks:
            if event:
                level *= 1.0 - 1.0 / at_risk
                self.times.append(value)
                self.levels.append(level)
            at_risk -= 1
        self._falls = [-level for level in self.levels]  # increasing: searchable by bisect

    def _first_at_or_below(self, level: float, start: int) -> int:
        """The first event index from ``start`` whose level is at most ``level`` (``len(times)`` if none)."""
        return bisect.bisect_left(self._falls, -level, lo=start)

    def level_at(self, t: float) -> float:
        index = bisect.bisect_right(self.times, t)
        return 1.0 if index == 0 else self.levels[index - 1]

    def quantile(self, floor: float, q: float) -> float | None:
        """Quantile ``q`` of the value, given it is above ``floor``; ``None`` when the data say too little past
        ``floor`` (the answer lies beyond what was seen, or fewer than :data:`LEAST` values lie beyond it). Read
        between events; below the first event after ``floor``, extrapolated along the events that follow (a
        quarter of what is left): a small sample's low quantile comes out early by as much as its own spread says,
        never before ``floor``."""
        start = bisect.bisect_right(self.times, floor)
        previous_time, previous_level = floor, self.level_at(floor)
        if previous_level <= 0.0 or len(self.values) - bisect.bisect_right(self.values, floor) < LEAST:
            return None  # too few tasks seen beyond the floor to say anything of what lies there
        target = previous_level * (1.0 - q)
        index = self._first_at_or_below(target, start)
        if index >= len(self.times):
            return None
        if index == start:
            return self._below_first(start, floor, target)
        previous_time, previous_level = self.times[index - 1], self.levels[index - 1]
        share = (previous_level - target) / (previous_level - self.levels[index])
        return previous_time + share * (self.times[index] - previous_time)

    def _below_first(self, start: int, floor: float, target: float) -> float:
        """Where ``target`` lies before the first event after ``floor``: on the line through that event and the one
        by which a quarter of what was left is gone; with a single event, between it and where most of the tasks
        still running were seen (or ``floor``)."""
        first_time, first_level = self.times[start], self.levels[start]
        top = self.level_at(floor)
        extrapolated = self._extrapolated(start, floor, target, first_time, first_level, top)
        if start == 0:
            return extrapolated  # the floor lies below every finish: the gap up to the first is the sample's own
        # Finishes came before the floor too: the floor is inside the spread, and that none of the few values beyond
        # it ended between it and the next finish does not make that gap safe. Count one more finish spread over it
        # (the plus-one rule): with fewer than 1 / RISK values beyond the floor (the forecaster's level), the quantile
        # comes that much earlier.
        beyond = len(self.values) - bisect.bisect_right(self.values, floor)
        pseudo = top / (beyond + 1)
        return min(extrapolated, floor + (first_time - floor) * min(1.0, (top - target) / pseudo))

    def _extrapolated(
        self, start: int, floor: float, target: float, first_time: float, first_level: float, top: float
    ) -> float:
        """Where ``target`` lies before the first event after ``floor``, along the events that follow it."""
        stop = start + 1
        if stop < len(self.times):
            stop = min(self._first_at_or_below(0.75 * top, stop), len(self.times) - 1)
        else:
            # One event: from where three quarters of the tasks still running before it were last seen.
            lo, hi = bisect.bisect_right(self.censored, floor), bisect.bisect_left(self.censored, first_time)
            base = self.censored[lo + (hi - lo) // 4] if hi - lo >= 3 else floor
            return base + (first_time - base) * (top - target) / (top - first_level)
        slope = (self.times[stop] - first_time) / (first_level - self.levels[stop])
        return max(floor, first_time - (target - first_level) * slope)


Near = tuple[list[float], list[float]] | None
"""Finished tasks' multipliers near a progress, and the watched tasks' as near as censored ones (``None``: too few
near)."""


class ByProgress:
    """The last ``size`` progress readings of finished tasks as ``(percent, multiplier)``, sorted by percent."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._sorted: list[tuple[int, float, float]] = []
        self._recent: collections.deque[tuple[int, float, float]] = collections.deque()
        self.version = 0
        self._read: dict[tuple[int, float], Survival | None] = {}  # what was read near each progress, while it holds
        self._read_key = (-1, -1)

    def read(
        self, progress: int, watched: int, near: Callable[[int, float], Near], min_scale: float = 0.0
    ) -> Survival | None:
        """``near(progress, min_scale)`` read as a survival, kept until a reading is added or the watched tasks change
        (``watched`` counts their changes): every task at that progress reads the same, and reading it costs the
        most of a check."""
        if (self.version, watched) != self._read_key:
            self._read_key = (self.version, watched)
            self._read.clear()
        key = (progress, min_scale)
        if key not in self._read:
            found = near(progress, min_scale)
            self._read[key] = None if found is None else Survival(*found)
        return self._read[key]

    def add(self, progress: int, multiplier: float, scale: float = math.inf) -> None:
        self.version += 1
        item = (progress, multiplier, scale)
        if len(self._recent) >= self._size:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(item)
        bisect.insort(self._sorted, item)

    def forget_before(self, version: int) -> None:
        """Keep only the readings added after :attr:`version` was that (what the provider does now)."""
        while len(self._recent) > self.version - version:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self.version += 1

    def nearest(self, progress: int, count: int, min_scale: float = 0.0) -> tuple[list[float], int] | None:
        """The multipliers of the ``count`` readings nearest ``progress`` learned at a scale of at least
        ``min_scale``, and how far the farthest is; ``None`` with fewer readings."""
        readings = self._sorted
        if len(readings) < count:
            return None
        high = bisect.bisect_left(readings, (progress, -math.inf, -math.inf))
        low = high - 1
        chosen: list[float] = []
        reach = 0
        while len(chosen) < count:
            below = progress - readings[low][0] if low >= 0 else 1000
            above = readings[high][0] - progress if high < len(readings) else 1000
            if below == above == 1000:
                return None
            if below <= above:
                item = readings[low]
                low -= 1
            else:
                item = readings[high]
                high += 1
            if item[2] >= min_scale:
                chosen.append(item[1])
                reach = max(reach, min(below, above))
        return chosen, reach
