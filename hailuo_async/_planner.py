"""When to check each task: its first look, and its next check after every answer. Pure: no I/O, no waiting.

Data flow: the poller (:mod:`._poller`) keeps an :class:`Entry` per tracked task and asks the :class:`Planner`
when to look at it, first (:meth:`Planner.first_look_wait`) and after each answer (:meth:`Planner.next_check`);
the planner answers from the forecaster's predictions (:mod:`._forecast`) and the :class:`PollPolicy`. A task's
first look comes when only the fastest few percent of tasks like it are done (learned from the batch: a few early
"probe" tasks, apimart's ``estimated_time``, other tasks' progress, finished tasks); from then on its next check
is aimed just after its predicted finish, with an intermediate reading first while that finish is uncertain.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._config import PollPolicy
from ._forecast import BatchModel, predict
from ._http import HttpRequest
from ._models import Task, TaskState, TaskStatus

if TYPE_CHECKING:
    from ._poller import Callback

__all__ = ["Entry", "Planner"]


class Entry:
    """What the poller keeps about one tracked task: its schedule, its answers and the evidence they gave."""

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
        self.spread = 1.0 - Planner.FIRST_SPREAD * random.random()  # where in the spread its first look falls
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


class Planner:
    """Plans every check of one poller's tasks from what its :class:`BatchModel` has learned."""

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

    def __init__(self, policy: PollPolicy, model: BatchModel) -> None:
        self.policy = policy
        self.model = model
        self.unplanned: list[Entry] = []
        """Tasks planned on a rough guess, to plan again once the model can read single progress readings."""

    def first_look_wait(self, entry: Entry, now: float) -> float:
        """Seconds until a task's first check; 0 means now. Asked again (within a second) while it says wait."""
        model = self.model
        if entry.probe:
            return 0.0
        if model.probes < model.PROBES and len(model.estimates) + len(model.predicted) < model.PROBES:
            # Among the first tasks: look now, to learn what the rest can expect.
            entry.probe = True
            model.probes += 1
            if model.scouts < model.SCOUTS:
                entry.scout = True
                model.scouts += 1
            return 0.0
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
            return 0.0
        entry.deferrals += 1
        # Decide again within a second: what the batch learns meanwhile may bring the first look forward.
        return min(wait, 1.0)

    def jittered(self, delay: float, *, most: float | None = None) -> float:
        """``delay`` spread by the policy's relative jitter, by at most ``most`` seconds either way if given."""
        spread = self.policy.jitter
        if not spread:
            return delay
        amount = delay * spread if most is None else min(delay * spread, most)
        return delay + random.uniform(-amount, amount)

    def next_check(self, entry: Entry, now: float, outstanding: int) -> float:
        """Seconds until the next check of a task that is still going (jittered); ``outstanding`` tasks are tracked."""
        policy = self.policy
        elapsed = now - entry.started
        prediction = predict(entry, self.model)
        entry.urgent = False
        if prediction is None:
            # Nothing known at all: back off geometrically with the task's age.
            return self.jittered(min(policy.max_interval, max(policy.min_interval, elapsed * 0.5)))
        total, uncertainty = prediction
        if not entry.counted and entry.progress0 is not None and uncertainty < 0.2 * total:
            entry.counted = True  # once per task: the sample is of tasks, not of readings
            self.model.predicted.add(total)
        remaining = total - elapsed
        if (
            not entry.unplanned
            and entry.progress1 is None
            and entry.progress0 is not None
            and len(self.model.queue_share) < self.model.SHARES_NEEDED
        ):
            entry.unplanned = True  # planned on a rough guess; planned again once the scouts have measured
            self.unplanned.append(entry)
        if entry.scout and self.scouting(entry, outstanding):
            return self.jittered(max(policy.min_interval, min(policy.near_end_interval, remaining)))
        earliest = remaining - uncertainty
        margin = min(policy.near_end_interval, self.MARGIN_SHARE * uncertainty)
        if uncertainty <= self.DIRECT_LIMIT * policy.near_end_interval and remaining > -margin:
            # Precise: just after the predicted finish. Finishes differ from task to task, so these checks are
            # spread anyway; jitter may not push one far past its aim.
            delay = remaining + margin
            entry.urgent = True
            return min(policy.max_interval, max(policy.min_interval, self.jittered(delay, most=0.2 * margin)))
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
        return self.jittered(min(policy.max_interval, max(policy.min_interval, delay)))

    def scouting(self, entry: Entry, outstanding: int) -> bool:
        """Whether a scout still reads its progress often, to measure its line while the model lacks lines."""
        if entry.measured or len(self.model.queue_share) >= self.model.SHARES_NEEDED:
            return False
        if outstanding <= 4 * self.model.SCOUTS:
            return False  # too few tasks outstanding for what a scout learns to pay for its extra checks
        # A provider that reports no progress gets a few quick looks, then the plain plan.
        return entry.checks < (self.model.SCOUT_CHECKS if entry.progress0 is not None else 4)
