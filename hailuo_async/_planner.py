"""When to check each task: the polling contract. Pure: no I/O, no waiting.

Data flow: the poller (:mod:`._poller`) keeps an :class:`Entry` per tracked task and asks the :class:`Planner`
when to check it next, after tracking it and after every answer; the planner answers from the forecaster's
forecast (:mod:`._forecast`) and the :class:`PollPolicy`.

The contract, for ``max_lag = L``:

- **Never more checks than a plain loop at** ``L``: a task's ``k``-th check is never sent before ``k * L`` seconds
  after its submit, so at every moment it has had at most as many checks as the loop would have sent.
- **Detection lag within** ``L`` **at the 95th percentile**: a task is checked on a beat of ``AIM * L``, like a
  loop, except where the forecast says it will very likely not finish for at least two more beats: then the check
  is aimed one beat after the :data:`~._forecast.RISK` quantile of its finish, *given that it was still running at
  its last check*, skipping the beats between. A task therefore goes unchecked for long only while the evidence
  says it is very unlikely to have finished, the lag exceeds a beat only with that small chance, and every such
  chance taken saves at least one check (:attr:`Planner.LEAST_SKIP`). A check planned on the beat is planned again
  when it falls due if many tasks have finished since (:attr:`Planner.NEWS`).
- **As few checks as the evidence allows**: the better the forecast (progress that maps well to time, a reliable
  ``estimated_time``, a batch whose durations are alike), the later its low quantile, and the fewer checks.

Roles: a random few tasks ("audits") are polled like the loop, so every source is scored against finishes known
within ``L`` (:mod:`._forecast`). The first tasks ("probes") are planned from their own evidence only (their
progress, the provider's estimate): until some finish, how long they have been seen running bounds how early the
others can finish, and those others wait for that news instead of being checked.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._config import PollPolicy
from ._forecast import RISK_ALLOWANCE, Forecaster, Role
from ._http import HttpRequest
from ._models import Task, TaskState, TaskStatus

if TYPE_CHECKING:
    from ._poller import Callback

NOT_AIMED = -1.0
"""``Entry.aim`` of a task whose next check was not aimed from a learned forecast."""

__all__ = ["Entry", "Planner"]


class Entry:
    """What the poller keeps about one tracked task: its schedule, its answers and the evidence they gave."""

    __slots__ = (
        "aim",
        "aim_source",
        "allowance",
        "callbacks",
        "checks",
        "covered",
        "deadline",
        "errors",
        "estimate",
        "frames",
        "lag",
        "last_seen",
        "listener",
        "listening",
        "news",
        "readings",
        "request",
        "role",
        "started",
        "state",
        "task",
        "trials",
        "undecodable",
        "urgent",
        "version",
        "waiting",
    )

    def __init__(self, task: Task, started: float, deadline: float | None, lag: float = 2.0) -> None:
        self.task = task
        self.started = started
        self.deadline = deadline
        self.lag = lag  # the contract's max_lag for this task (a sparser one when a webhook brings the news)
        self.role: Role = "planned"
        self.callbacks: list[Callback] = []
        self.listener: Callable[[TaskStatus], None] | None = None
        self.checks = 0  # answered checks
        self.errors = 0
        self.undecodable = 0  # status answers in a row that could not be decoded
        self.last_seen = 0.0  # seconds from submit to the latest answer that found it still going
        self.covered = 0.0  # seconds from submit until which the evidence said it would very likely still go
        self.allowance = RISK_ALLOWANCE  # the risk its checks may still take beyond the spread's share
        self.aim = NOT_AIMED  # when (seconds from submit) it was last seen, if its next check was aimed from a
        # learned forecast: that check is scored against the chance the forecast gives it of finding the task ended
        self.aim_source = ""  # the source that forecast came from ("": one with no chance of its own, not scored)
        self.version = 0
        self.urgent = False  # its next check is likely to find it finished
        self.waiting = False  # its next due moment is only a time to plan again, not a check
        self.listening = False  # it is planned again on news of a finish, whatever its next due moment is (always
        # so while ``waiting``)
        self.news: int | None = None  # finishes known when its next check was planned on the beat (else None)
        self.request: HttpRequest | None = None  # the status request, built once
        self.state = TaskState.QUEUED
        self.readings: list[tuple[float, int]] = []
        self.frames: list[tuple[int, float, float, int]] = []
        self.estimate: tuple[float, float] | None = None
        self.trials: list[tuple[str, float]] | None = None


class Planner:
    """Plans every check of one poller's tasks under the policy's contract."""

    AIM = 0.93
    """Share of ``max_lag`` (less the latency of a status check, and of the URL fetch that follows it on MiniMax)
    between beats, and by which a check comes after the low quantile of the finish: the rest absorbs the poller's
    wake-up grid, the spread of latencies and the forecasts' misses."""

    LEAST_SKIP = 2.0
    """Beats a forecast must let a check skip before it is trusted: each skip risks up to
    :data:`~._forecast.RISK` that the task ends inside it, and a task skipped many times adds those risks up, so
    every risk taken must save at least one check. Where the finish could come any moment (durations spread evenly,
    a vague estimate) the low quantile is never that far off, and the task is polled on the beat. While requests
    are scarce (the provider answered 429, or a fixed rate was set) one beat is enough: every check then delays a
    submit or a likelier check, and the lag is the rate's to decide."""

    NEWS = 0.25
    """Growth of the finished tasks known since a check was planned on the beat by which, once it is due, it is
    planned again before it is sent: what the batch has shown since may say the task will not end for a while."""

    RECRUIT = 3.0
    """Multiples of ``max_lag`` the probes may run with no task finished before waiting tasks become probes too (up
    to as many again). Tasks that end before the first probe does are found only once it has: about one in as many
    as there are probes, plus one. With 30 probes, one batch in five has 5 % of its tasks end so (0.95 ** 30), which
    breaks the 95th percentile's promise once that wait outlasts ``max_lag``; with 60, one in twenty. Short tasks
    checked at a large ``max_lag`` rarely wait that long, and pay nothing for it."""

    WAIT_GROWTH = 0.5
    """A task waiting for the first finish looks again after at most this share of its age more (or on news)."""

    def __init__(self, policy: PollPolicy, forecaster: Forecaster, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.forecaster = forecaster
        self.rng = rng if rng is not None else forecaster.rng
        self.latency = 0.0  # how long a status answer takes to come back, smoothed: it counts in the lag
        self.fetch = 0.0  # how long fetching a finished task's video URL takes (MiniMax), smoothed: it counts too
        self.grid = 0.0  # the poller's wake-up grid: a check goes out up to this much after its moment
        self.scarce: Callable[[], bool] = lambda: False  # whether requests are rationed (the poller's pacer says)

    def took(self, seconds: float) -> None:
        """A status check took ``seconds`` from its send to its answer."""
        self.latency += 0.1 * (seconds - self.latency)

    def fetched(self, seconds: float) -> None:
        """Fetching a finished task's video URL (one more request after its status, MiniMax) took ``seconds``."""
        self.fetch += 0.1 * (seconds - self.fetch)

    def stale(self, entry: Entry) -> bool:
        """Whether a check planned on the beat, now due, was planned on much less than is known now: it is then
        planned again before it is sent (a check aimed at a forecast stands: planning it again would risk more)."""
        return entry.news is not None and self.forecaster.finishes >= (1.0 + self.NEWS) * entry.news + 1

    def enrol(self, task: Task, started: float, deadline: float | None, lag: float | None = None) -> Entry:
        """A new task's entry and its role. ``lag``: its own ``max_lag`` (a task whose provider calls back is
        polled only as a safety net: it is neither a probe nor an audit)."""
        entry = Entry(task, started, deadline, self.policy.max_lag if lag is None else lag)
        if lag is not None:
            return entry
        entry.role = self.forecaster.enrol(task.task_id, entry)
        if entry.role == "audit":
            entry.trials = []
        return entry

    def next_check(self, entry: Entry, now: float) -> float:
        """When (monotonic) a task still going is next due. ``entry.waiting`` says whether that moment is a check
        or only a time to plan again; ``entry.urgent`` whether the check is likely to find the task finished."""
        policy = self.policy
        lag = entry.lag
        seen = entry.started + entry.last_seen  # the last answer that found it going (or its submit)
        step = max(self.AIM * lag - self.latency - self.fetch - 0.5 * self.grid, min(policy.min_interval, 0.5 * lag))
        beat = max(now, seen + step)  # the loop's next beat: one step after the last sighting, or now if overdue
        budget = self.budget(entry)
        entry.waiting = entry.urgent = entry.listening = False
        entry.news = None
        if entry.role == "audit":
            if entry.checks and entry.trials is not None:
                entry.trials.extend(self.forecaster.trials(entry, entry.last_seen))
            return max(budget, beat)
        skip = 1.0 if self.scarce() else self.LEAST_SKIP
        # A low quantile before ``useful`` means a check on the beat (below): the forecaster need not read lower.
        useful = beat + (skip - 1.0) * step - entry.started
        finish = self.forecaster.forecast(entry, entry.last_seen, step, entry.allowance, useful)
        entry.aim = NOT_AIMED  # a check aimed from a forecast was scored as its answer came (``answered``)
        if finish is None or (finish.bound and entry.role == "probe"):
            entry.news = self.forecaster.finishes
            return max(budget, beat)  # nothing usable known (a probe is what the others wait for): the plain loop
        latest = max(beat, seen + policy.max_interval)  # no gap beyond max_interval
        if finish.bound and finish.low >= self.RECRUIT * lag and self.forecaster.recruit(entry.task.task_id, entry):
            entry.role = "probe"  # a long wait for the first finish: more probes (see RECRUIT)
            entry.news = self.forecaster.finishes
            return max(budget, beat)
        if finish.bound:
            # Nothing finished yet, and probes at least as old as this task were seen running at ``finish.low``:
            # wait for news of a finish (the poller plans waiting tasks again then). Look again at the latest when
            # the probes' next sighting is due, or after half its age more, whichever is later: asking every beat
            # would cost a plan per waiting task per beat, however many wait.
            edge = entry.started + finish.low + 1.1 * lag
            if edge <= now:
                return max(budget, beat)  # the probes were not seen again in time: check it like the loop
            again = max(edge, now + self.WAIT_GROWTH * (now - entry.started))
            entry.waiting = again < latest
            # Even when the gap's cap makes its next moment a check, the first finishes are news it must hear: it
            # may end any moment once some have.
            entry.listening = True
            entry.covered = max(entry.covered, finish.low)
            return min(again, latest)
        aimed = entry.started + finish.low + step
        if aimed < beat + skip * step:
            # Too little to skip for the risk: a beat of the loop (the low quantile's slack would only add lag).
            entry.news = self.forecaster.finishes
            return max(budget, beat)
        latest = max(beat, seen + self.reach(finish.source))
        entry.urgent = finish.median is not None and aimed >= entry.started + finish.median
        entry.covered = max(entry.covered, finish.low)
        entry.allowance = finish.allowance_after(entry.allowance, finish.low + step)
        if not finish.prior:  # a prior is wide on purpose: its chances are not scored
            entry.aim = entry.last_seen
            entry.aim_source = finish.source if finish.chance_given else ""
        if policy.jitter:
            aimed -= self.rng.uniform(0.0, policy.jitter) * (aimed - beat)  # earlier only, never before the beat
        return max(budget, min(aimed, latest))

    def reach(self, source: str) -> float:
        """The longest gap a check aimed from ``source``'s forecast may leave after the task's last sighting:
        ``max_interval`` while the source's aimed checks find tasks ended as often as it says, ``max_interval /
        (1 + s)`` while they give evidence ``s`` that its forecasts come late (:meth:`Forecaster.suspicion`). A
        provider that suddenly got faster than anything the batch has shown is found by checks that reach ever less
        far as the evidence grows, rather than a whole ``max_interval`` apart until the source is dropped."""
        return self.policy.max_interval / (1.0 + self.forecaster.suspicion(source))

    def within_reach(self, entry: Entry, due: float) -> float:
        """When a check aimed from ``entry.aim_source`` and due at ``due`` (monotonic) comes now that the source
        reaches :meth:`reach` after the task's last sighting: no later, and never before the loop's budget."""
        edge = entry.started + entry.last_seen + self.reach(entry.aim_source)
        if due <= edge:
            return due
        return max(edge, self.budget(entry))

    @staticmethod
    def budget(entry: Entry) -> float:
        """The earliest its next check may go (monotonic): a loop at its ``max_lag`` sends no earlier."""
        return entry.started + (entry.checks + 1) * entry.lag

    def answered(self, entry: Entry, moment: float, *, ended: bool) -> None:
        """A status answer came ``moment`` seconds after the task's submit, found it ``ended`` or still going; called
        before what it says is kept. A check aimed from a forecast is scored once, on what its source knew when it
        aimed it, whichever way it went: with the answer's reading kept first, a source would be told where a going
        task is (its chance of having ended by then falls to next to nothing) but not where an ended one was, and
        its record would rise on the truth. An ended task's check keeps its aim while the source is trusted: its
        low quantile then bounds when the task ended (:meth:`duration`)."""
        if entry.aim < 0.0 or not entry.aim_source:
            return
        trusted = self.forecaster.aimed(entry, entry.aim, moment, ended=ended, source=entry.aim_source)
        entry.aim_source = ""  # scored: an answer after this one (a URL fetch that failed) says nothing new
        if not (ended and trusted):
            entry.aim = NOT_AIMED

    def duration(self, entry: Entry, now: float) -> tuple[float, float]:
        """How long a task found ended at ``now`` took, and give or take how much: the middle of when it likely
        ended, after its last answer and after the low quantile its last check was aimed from. Should that forecast
        be wrong, the audits tell (:mod:`._forecast` scores every source on them), and so do the tasks its aimed
        checks find ended far more often than it said (then the low quantile bounds nothing)."""
        found = now - entry.started
        since = entry.last_seen
        if entry.aim >= 0.0:  # aimed from a forecast whose source was still trusted when the answer came
            since = max(since, entry.covered)
        since = min(since, found)
        return (since + found) / 2.0, (found - since) / 2.0
