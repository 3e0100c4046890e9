"""The forecaster on recorded sequences, without a poller: the sources learned from finished tasks' predictions,
priors, the probes' bound, and scoring that takes a source's weight away. Pure: no I/O, no clock."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from hailuo_async._forecast import (
    ESTIMATE_LEAST,
    LATE_ALARM,
    RISK,
    RISK_ALLOWANCE,
    SCORED,
    SPREAD_RISK,
    Finish,
    Forecaster,
    _line,
)
from hailuo_async._models import TaskState, TaskStatus
from hailuo_async._survival import LEAST


class Task:
    """What the poller keeps of a task, as far as the forecaster reads it."""

    def __init__(self) -> None:
        self.readings: list[tuple[float, int]] = []
        self.estimate: tuple[float, float] | None = None
        self.trials: list[tuple[str, float]] | None = None
        self.last_seen = 0.0
        self.frames: list[tuple[int, float, float, int]] = []


def running(progress: int | None = None, eta: float | None = None) -> TaskStatus:
    return TaskStatus(state=TaskState.RUNNING, progress=progress, eta=eta)


def linear_progress(t: float, duration: float, queued: float = 0.15) -> int:
    """The progress a task of ``duration`` reports at ``t``: 0 while queued, then a straight line to 99."""
    return max(0, min(99, int(99 * (t - queued * duration) / ((1 - queued) * duration))))


def play(forecaster: Forecaster, duration: float, checks: list[float], *, eta: float | None = None) -> Task:
    """A task read at ``checks`` seconds (linear progress), then found finished ``duration`` seconds in."""
    task = Task()
    for t in checks:
        if t >= duration:
            break
        forecaster.observe(task, running(linear_progress(t, duration), eta), t)
        task.last_seen = t
        forecaster.remember(task)
    forecaster.finished(f"t{id(task)}", task, duration)
    return task


# -- sources ---------------------------------------------------------------------------------------------------


def test_observe_keeps_the_first_reading_and_the_latest_ones() -> None:
    task = Task()
    for t, progress in [(1.0, 5), (2.0, 10), (3.0, 20), (4.0, 20), (5.0, 30), (6.0, 40), (7.0, 0)]:
        Forecaster.observe(task, running(progress, eta=30.0 if t > 2 else None), t)
    assert task.readings == [(1.0, 5), (4.0, 20), (5.0, 30), (6.0, 40)]  # a stalled level keeps its latest time
    assert task.estimate == (3.0, 30.0)  # the first estimate, with when it was read


def test_the_line_is_the_recent_pace() -> None:
    task = Task()
    task.readings = [(1.0, 5), (3.0, 20), (5.0, 40), (6.0, 45)]
    # From the latest reading back to the last one at least SPAN points below it: (3 s, 20) to (6 s, 45).
    assert _line(task) == pytest.approx((6.0, 55 * 3.0 / 25))
    task.readings = [(1.0, 5), (2.0, 9)]
    assert _line(task) is None  # too short to draw


def test_the_line_is_read_where_on_the_shape_it_was_drawn() -> None:
    # Progress that slows down (concave): lines drawn early overshoot twice as much as lines drawn late. A line drawn
    # to 80 % is read from the lines finished tasks had at 80 %, not from all of them.
    forecaster = Forecaster(random.Random(3))
    index = forecaster.sources.index(forecaster.line)
    for number in range(40):
        # (Lines drawn early leave more time at their pace: 35 s there, 10 s for those drawn to 80 %.)
        progress, left, multiplier = (30, 35.0, 2.0) if number % 2 else (80, 10.0, 1.0 + 0.002 * number)
        done = Task()
        done.frames = [(index, 10.0, left, progress)]
        forecaster.finished(f"done{number}", done, 10.0 + left * multiplier)
    task = Task()
    task.readings = [(10.0, 60), (20.0, 80)]
    task.last_seen = 20.0
    late = next(f for f in forecaster.candidates(task, 20.0) if f.source == "line")
    assert late.median is not None and 29.0 < late.low <= late.median < 31.5  # 20 s + 10 s left * ~1.0
    task.readings = [(10.0, 10), (20.0, 30)]
    early = next(f for f in forecaster.candidates(task, 20.0) if f.source == "line")
    assert early.low > 20.0 + 2.0 * 35.0 * 0.95  # 35 s left at its pace, twice that


def test_the_estimate_read_both_ways_keeps_the_earlier() -> None:
    # Until audits tell whether the provider's estimate is the whole time or the time left, the reading that says
    # the task may end sooner is the one that stands.
    forecaster = Forecaster(random.Random(4))
    for index in range(100):
        forecaster.estimate.sample.add(1.0 + 0.0001 * index)  # as the whole time: tightly right, so far
        forecaster.estimate_left.sample.add(0.3 + 0.012 * index)  # as the time left: loose
    task = Task()
    forecaster.observe(task, running(eta=100.0), 30.0)
    task.last_seen = 30.0
    both = {f.source: f for f in forecaster.candidates(task, 30.0)}
    assert both["estimate"].width < both["estimate left"].width  # the narrower would win...
    assert both["estimate left"].low < both["estimate"].low  # ...but the other says it may end sooner
    chosen = forecaster.forecast(task, 30.0)
    assert chosen is not None and chosen.source == "estimate left" and chosen.low == both["estimate left"].low


def estimated(forecaster: Forecaster, name: str, eta: float, durations: list[float]) -> None:
    """Tasks whose estimate of ``eta`` seconds was read 1 s in, found finished after ``durations``."""
    for index, duration in enumerate(durations):
        done = Task()
        forecaster.observe(done, running(eta=eta), 1.0)
        forecaster.finished(f"{name}{index}", done, duration)


def test_quick_tasks_do_not_forecast_tasks_many_times_longer() -> None:
    # A batch of short and long videos whose estimates come in whole seconds: 6.5-6.9 s of work estimated "6" gives
    # multipliers of 1.08-1.15, a rounding that is a share of 6 s. Read for a task estimated at 60 s they would put
    # its earliest finish past 65 s, though it may take 60.5. It is not read that way: those multipliers were learned
    # at a tenth of its scale. Tasks of its own scale, once finished, are.
    forecaster = Forecaster(random.Random(5))
    estimated(forecaster, "quick", 6.0, [6.5 + 0.4 * index / 40 for index in range(40)])
    quick, long = Task(), Task()
    for task, eta in ((quick, 6.0), (long, 60.0)):
        forecaster.observe(task, running(eta=eta), 1.0)
        task.last_seen = 1.0
    at_its_scale = next(f for f in forecaster.candidates(quick, 1.0) if f.source == "estimate")
    assert not at_its_scale.prior and at_its_scale.low > 6.4  # the quick ones' own scale: read as learned
    ten_times = next(f for f in forecaster.candidates(long, 1.0) if f.source == "estimate")
    assert ten_times.prior and ten_times.low < 60.0  # nothing learned at its scale: the wide prior only
    estimated(forecaster, "long", 60.0, [60.0 + 2.0 * index / 40 for index in range(40)])
    learned = next(f for f in forecaster.candidates(long, 1.0) if f.source == "estimate")
    assert not learned.prior and 59.0 < learned.low <= 60.5


def test_an_estimate_of_a_few_whole_seconds_is_not_read() -> None:
    # Estimates come in whole seconds. Tasks of 5-6 s estimated at "1" give multipliers of 5-6; a task of 8 s
    # estimated at "2" (the same estimate, a quarter of the truth) would be told it cannot end before 10 s. So an
    # estimate under ESTIMATE_LEAST is read by neither estimate source, nor learned from; a larger one is.
    forecaster = Forecaster(random.Random(7))
    estimated(forecaster, "quick", 1.0, [5.0 + index / 40 for index in range(40)])
    assert len(forecaster.estimate.sample) == len(forecaster.estimate_left.sample) == 0
    two = Task()
    forecaster.observe(two, running(eta=2.0), 1.0)
    two.last_seen = 1.0
    assert {f.source for f in forecaster.candidates(two, 1.0)} <= {"durations"}
    estimated(forecaster, "longer", ESTIMATE_LEAST, [16.0 + index / 40 for index in range(40)])
    assert len(forecaster.estimate.sample) == 40


def test_what_was_learned_from_finishes_known_roughly_is_read_that_much_earlier() -> None:
    # Forty tasks found finished 10-10.4 s after their submit, each known only to within 0.5 s (its last check found
    # it going half a second earlier at most): a task may end 0.5 s before the earliest of them, and the durations'
    # low quantile says so. Known exactly, it does not move.
    def low(error: float) -> float:
        forecaster = Forecaster(random.Random(8))
        for index in range(40):
            forecaster.finished(f"d{index}", Task(), 10.0 + 0.01 * index, error)
        found = {f.source: f for f in forecaster.candidates(Task(), 0.0)}
        return found["durations"].low

    exact, rough = low(0.0), low(0.5)
    assert 9.8 < exact < 10.1  # about the earliest finish
    assert rough == pytest.approx(exact - 0.5, abs=0.01)  # the error, smoothed over forty finishes


def test_a_task_overdue_by_one_reading_of_the_estimate_is_polled_on_the_beat() -> None:
    # The provider's estimate is a quarter of the whole time. Read as the whole time it is right: every task took
    # four times its estimate, 40-42 s. Read as the time left it fits tasks read early, and tells one first read at
    # 38 s that it has some 40 s to go. At 44 s that task has outlived every multiplier of the first reading: it is
    # overdue, and is checked on the beat rather than some 30 s later.
    forecaster = Forecaster(random.Random(6))
    estimated(forecaster, "early", 10.0, [40.0 + 2.0 * index / 40 for index in range(40)])
    late = Task()
    forecaster.observe(late, running(eta=10.0), 38.0)
    late.last_seen = 44.0
    found = {f.source: f for f in forecaster.candidates(late, 44.0)}
    assert found["estimate"].overdue
    assert found["estimate left"].low > 70.0 and not found["estimate left"].overdue
    assert forecaster.forecast(late, 44.0) is None  # the planner polls it like the loop


def late_share(forecaster: Forecaster, durations: list[float], step: float, lag: float) -> tuple[float, float]:
    """Each task of ``durations`` checked as the planner would, from the forecasts alone: the next check one step
    after the low quantile where that skips a beat, else on the beat. The share of tasks found more than ``lag``
    after they ended, and the checks per task."""
    late = checks = 0
    for duration in durations:
        task, t, allowance = Task(), 0.0, RISK_ALLOWANCE
        while True:
            finish = forecaster.forecast(task, t, step, allowance)
            nxt = t + step
            if finish is not None and finish.low + step > t + 2 * step:
                nxt = finish.low + step
                allowance = finish.allowance_after(allowance, nxt)
            checks += 1
            if nxt >= duration:
                late += nxt - duration > lag
                break
            t = task.last_seen = nxt
    return late / len(durations), checks / len(durations)


def test_the_risk_of_skipping_beats_is_spread_over_a_task_life() -> None:
    # Durations spread evenly over 50-200 s, learned from 400 finishes, nothing else known (MiniMax's answers). A
    # task may end any moment after 50 s. Aimed at the 3 % quantile every time, each check past 50 s skips a few
    # beats at a 3 % risk, and about a third of the tasks were found later than max_lag. The risk a task's checks
    # take is bounded over its life: one long skip up to the batch's shortest duration (charged to its
    # allowance), then only skips whose risk is a small share of the chance the task ends in them.
    rng = random.Random(3)
    forecaster = Forecaster(random.Random(3))
    for index in range(400):
        forecaster.finished(f"d{index}", Task(), rng.uniform(50.0, 200.0))
    durations = [rng.uniform(50.0, 200.0) for _ in range(400)]
    late, checks = late_share(forecaster, durations, step=1.8, lag=2.0)
    assert late <= SPREAD_RISK + RISK_ALLOWANCE + 0.02  # sampling margin on 400 tasks
    assert checks < 0.8 * statistics.mean(durations) / 1.8  # the first 50 s are still skipped
    first = forecaster.forecast(Task(), 0.0, 1.8, RISK_ALLOWANCE)
    assert first is not None and 50.0 < first.low < 54.0 and first.charged > 0.0  # its 2 % quantile
    # A task with no allowance left, at 60 s, is polled on the beat: no skip is safe in an even spread.
    late_task = Task()
    late_task.last_seen = 60.0
    again = forecaster.forecast(late_task, 60.0, 1.8, 0.0)
    assert again is not None and again.low + 1.8 < 60.0 + 2 * 1.8


def test_a_source_read_lower_after_misses_still_charges_its_skips() -> None:
    # The same even spread, but the audits caught the durations missing (7 % against the promised 3 %), so they are
    # read at a level of about 1.3 %: under the task's whole allowance. That allowance covered every such skip and
    # none was charged, so a task took the risk again at every check: on MiniMax at max_lag 0.5 (durations 2-60 s),
    # one batch in three came in at p95 0.7-1.1 s. Read lower or not, each skip is charged.
    rng = random.Random(3)
    forecaster = Forecaster(random.Random(3))
    for index in range(400):
        forecaster.finished(f"d{index}", Task(), rng.uniform(50.0, 200.0))
    forecaster.durations.scored, forecaster.durations.misses = 20.0, 1.42
    level = forecaster.durations.level()
    assert level is not None and level < RISK_ALLOWANCE
    first = forecaster.forecast(Task(), 0.0, 1.8, RISK_ALLOWANCE)
    assert first is not None and first.charged == pytest.approx(level)
    durations = [rng.uniform(50.0, 200.0) for _ in range(400)]
    late, _ = late_share(forecaster, durations, step=1.8, lag=2.0)
    assert late <= SPREAD_RISK + RISK_ALLOWANCE + 0.02  # 15 % of the tasks when nothing was charged


def test_a_forecast_that_pins_the_finish_down_keeps_its_level() -> None:
    # Every task took 100-100.5 s: the low quantile and the end lie within a step, so however often the task is
    # skipped, little risk is taken where it does not end. The level is read as it is, allowance or none.
    forecaster = Forecaster(random.Random(4))
    for index in range(100):
        forecaster.finished(f"d{index}", Task(), 100.0 + 0.005 * index)
    task = Task()
    task.last_seen = 30.0
    plain = forecaster.forecast(task, 30.0)
    spread = forecaster.forecast(task, 30.0, 1.8, 0.0)
    assert plain is not None and spread is not None
    assert spread.low == pytest.approx(plain.low) and spread.charged == 0.0


def queued_then_run(forecaster: Forecaster, wait: float, run: float, checks: list[float], *, end: bool) -> Task:
    """A task that waits ``wait`` seconds in the provider's queue, then runs ``run`` seconds in a straight line,
    read at ``checks``; found finished at its end if ``end``."""
    task = Task()
    for t in checks:
        if t >= wait + run:
            break
        answer = running(int(99 * (t - wait) / run)) if t >= wait else TaskStatus(state=TaskState.QUEUED, progress=0)
        forecaster.observe(task, answer, t)
        task.last_seen = t
        forecaster.remember(task)
    if end:
        forecaster.finished(f"t{id(task)}", task, wait + run)
    return task


def test_a_wait_in_the_queue_is_not_read_as_slow_progress() -> None:
    # A provider that runs so many tasks at once: the rest wait their turn in its queue, in waves, then run 10 s.
    # Counted from the submit, the second wave's reading of 19 % came 12 s in and meant 20 s in all, so a third-wave
    # task read at 19 % 22 s in would be told it cannot end before 35 s; it ends at 30 s. Counted from the last
    # answer that found it not started (queued, or at 0 % after that), every wave reads alike.
    forecaster = Forecaster(random.Random(5))
    beats = [2.0 * k + 0.05 * index for index in range(40) for k in range(1, 16)]
    for index in range(40):
        queued_then_run(forecaster, 10.0, 10.0, beats[index * 15 : index * 15 + 15], end=True)
    third = queued_then_run(forecaster, 20.0, 10.0, [2.0 * k for k in range(1, 12)], end=False)
    assert third.readings[0] == (20.0, 0) and third.readings[-1][1] == 19  # queued, then 0 % at 20 s, 19 % at 22 s
    finish = forecaster.forecast(third, 22.0)
    assert finish is not None and finish.low <= 30.0
    assert finish.median is not None and abs(finish.median - 30.0) < 2.0


def test_a_source_whose_aimed_checks_keep_finding_tasks_ended_is_not_used_until_that_fades() -> None:
    forecaster = Forecaster(random.Random(9))
    for index in range(40):
        forecaster.finished(f"d{index}", Task(), 15.0 + 0.4 * index)
    durations = forecaster.durations
    # Told the truth: a batch's worth of checks (a task finishing every third), each finding the task ended with
    # the chance it was given. Never dropped (by chance, about one batch in a hundred would drop it for a while:
    # checks on the beat, not a late result).
    rng = random.Random(9)
    for index in range(1500):
        chance = rng.choice([0.03, 0.1, 0.3, 0.6])
        durations.aimed(chance, rng.random() < chance)
        assert not durations.late()
        if index % 3 == 0:
            forecaster.finished(f"f{index}", Task(), rng.uniform(15.0, 31.0))
    assert durations.level() is not None
    # The provider got faster: checks aimed from the durations (all 15 s or more) find tasks ended 8 s in.
    trusted = []
    for _ in range(6):
        task = Task()
        trusted.append(forecaster.aimed(task, 0.0, 8.0, ended=True, source="durations"))
    assert trusted[:3] == [True] * 3 and not trusted[-1]  # dropped within a handful
    assert durations.level() is None and durations.drift > LATE_ALARM and forecaster.alarms == 1
    assert {f.source for f in forecaster.candidates(Task(), 0.0)} == set()  # nothing forecasts: the beat
    for index in range(40):  # polled on the beat meanwhile, tasks finish: the record fades, the source is back
        forecaster.finished(f"e{index}", Task(), 6.0 + 0.1 * index)
    assert durations.level() is not None


def test_a_source_found_late_forgets_what_it_learned_before_the_provider_changed() -> None:
    # 300 tasks took 15-30 s; then the provider got faster (5-10 s). Dropped, then back as its record fades, the
    # durations would still hold the 300 old ones: a task seen going 8 s in would again be told it cannot end before
    # 15 s, and found late until it is caught a second time. What came before the evidence began to rise is
    # forgotten when it is caught.
    forecaster = Forecaster(random.Random(4))
    rng = random.Random(4)
    for index in range(300):
        forecaster.finished(f"old{index}", Task(), rng.uniform(15.0, 30.0))
    for _ in range(20):  # checks that told the truth: the record stays at 0
        forecaster.aimed(Task(), 0.0, 15.0, ended=False, source="durations")
    assert forecaster.durations.drift == 0.0
    index = 0
    while not forecaster.durations.late():
        forecaster.aimed(Task(), 0.0, 8.0, ended=True, source="durations")
        forecaster.finished(f"new{index}", Task(), rng.uniform(5.0, 10.0))
        index += 1
    assert forecaster.alarms == 1 and 0 < index < 10
    kept = forecaster.durations.sample.sorted
    assert len(kept) == index and max(kept) < 10.0  # the fast finishes since the rise, and nothing older
    while forecaster.durations.late():
        forecaster.finished(f"new{index}", Task(), rng.uniform(5.0, 10.0))
        index += 1
    finish = forecaster.forecast(Task(), 0.0)  # back in use, for a new task: what the provider does now
    assert finish is not None and finish.source == "durations" and not finish.prior
    assert finish.low < 7.0 and finish.median is not None and finish.median < 10.0


def test_an_aimed_check_is_scored_against_the_source_that_aimed_it() -> None:
    # By the time a check aimed from a wide source is answered, a sharper one may forecast the task best. Scoring
    # that one for a check it did not aim blamed it for the wide one's late aims: on linear progress, checks aimed
    # from the progress readings found tasks ended, and the line (all sixteen of its scored checks "late") was
    # dropped though it told the truth.
    forecaster = Forecaster(random.Random(3))
    rng = random.Random(3)
    for index in range(40):  # durations spread over 10-40 s; each task's estimate within 5 % of its own
        task = Task()
        duration = rng.uniform(10.0, 40.0)
        task.estimate = (0.0, duration * rng.uniform(0.95, 1.05))
        forecaster.finished(f"t{index}", task, duration)
    task = Task()
    task.estimate = (0.0, 30.0)
    best = forecaster.forecast(task, 0.0)
    assert best is not None and best.source.startswith("estimate")  # the sharper one
    assert forecaster.durations.name in {found.source for found in forecaster.candidates(task, 0.0)}
    for _ in range(3):  # aimed from the durations, found ended 12 s in: a chance for them, none for the estimate
        assert forecaster.aimed(task, 0.0, 12.0, ended=True, source=forecaster.durations.name)
    assert forecaster.durations.drift > 0.0
    assert [source.drift for source in forecaster.sources if source is not forecaster.durations] == [0.0] * 4


def test_an_aimed_check_is_scored_with_the_chance_its_forecast_gave() -> None:
    forecaster = Forecaster(random.Random(6))
    for index in range(12):
        forecaster.finished(f"d{index}", Task(), 20.0 + index)
    finish = forecaster.forecast(Task(), 0.0)
    assert finish is not None and finish.source == "durations"
    # Twelve values cannot say a chance is below 1 / 13: that none ended before 20 s is not a chance of 0.
    chance = finish.ended_by(15.0, 0.0)
    assert chance is not None and chance == pytest.approx(1.0 / 13.0)
    assert finish.ended_by(25.5, 0.0) == pytest.approx(0.5, abs=0.05)  # six of twelve ended by then
    # A low quantile another source brought down has no reading of its own: no chance was given, and the planner
    # aims its check from no source (""): nothing is scored.
    lowered = Finish(5.0, finish.median, "durations")
    assert lowered.ended_by(8.0, 0.0) is None and not lowered.chance_given and finish.chance_given
    for _ in range(10):
        assert forecaster.aimed(Task(), 0.0, 8.0, ended=True, source="")
    assert forecaster.durations.drift == 0.0
    # Read as the low quantile was: a forecast put 2 s earlier (finishes known only roughly) is scored 2 s earlier.
    forecaster.finish_error = 2.0
    early = forecaster.forecast(Task(), 0.0)
    assert early is not None and early.low == pytest.approx(finish.low - 2.0)
    assert early.ended_by(23.5, 0.0) == pytest.approx(finish.ended_by(25.5, 0.0))


def test_a_batch_with_linear_progress_predicts_a_reading_sharply() -> None:
    rng = random.Random(1)
    forecaster = Forecaster(random.Random(1))
    for _ in range(60):
        duration = rng.uniform(5, 20)
        play(forecaster, duration, [2.0 * k for k in range(1, 12)])
    misses, widths = 0, []
    for _ in range(200):
        duration = rng.uniform(5, 20)
        task = Task()
        t = rng.uniform(0.3, 0.9) * duration
        forecaster.observe(task, running(linear_progress(t, duration)), t)
        task.last_seen = t
        finish = forecaster.forecast(task, t)
        assert finish is not None and not finish.prior and not finish.bound
        misses += duration < finish.low
        assert finish.median is not None
        widths.append((finish.median - finish.low) / duration)
    assert misses <= 200 * 3 * RISK  # the low quantile holds (a generous margin on 3 %)
    assert statistics.median(widths) < 0.15  # and is close to the middle: one reading says much


def test_first_finishes_are_the_fast_ones_the_running_probes_say_so() -> None:
    forecaster = Forecaster(random.Random(2))
    probes = [Task() for _ in range(Forecaster.PROBES)]
    for index, probe in enumerate(probes):
        forecaster.enrol(f"probe{index}", probe)
    newcomer = Task()
    finish = forecaster.forecast(newcomer, 0.0)
    assert finish is not None and finish.bound and finish.low == 0.0  # nothing seen yet: not before 0
    for probe in probes:
        forecaster.saw(probe, 6.0)  # as the poller reports each answer that found it going
    finish = forecaster.forecast(newcomer, 0.0)
    assert finish is not None and finish.bound and finish.low == 6.0  # none of thirty finished within 6 s
    assert forecaster.forecast(probes[0], 6.0) is None  # a probe never waits for itself
    forecaster.finished("probe0", probes[0], 6.5)
    finish = forecaster.forecast(newcomer, 0.0)
    assert finish is not None and not finish.bound
    assert 3.0 < finish.low < 6.5  # one in thirty finished at 6.5 s: the low quantile is near it, not at 0


def test_a_lone_task_reads_the_estimate_through_its_prior_until_tasks_finish() -> None:
    forecaster = Forecaster(random.Random(3))
    task = Task()
    forecaster.enrol("alone", task)  # the first task is a probe
    forecaster.observe(task, running(eta=120.0), 2.0)
    task.last_seen = 2.0
    finish = forecaster.forecast(task, 2.0)
    assert finish is not None and finish.prior
    # Estimates four times too long are seen (apimart: 600 s for 155), noisy ones further: 0.15 x 120 s, or so.
    assert 15.0 < finish.low < 25.0
    for _ in range(LEAST):
        play(forecaster, 100.0, [50.0, 90.0], eta=100.0)
    finish = forecaster.forecast(task, 2.0)
    # Learned now, not assumed: estimates held (100 s for an estimate of 100 s) and every task took 100 s, which
    # also bounds this one's low quantile (its estimate, 120 s, alone would say later).
    assert finish is not None and not finish.prior and finish.low > 50.0


def test_a_prediction_teaches_only_if_the_finish_is_known_well_enough() -> None:
    forecaster = Forecaster(random.Random(4))
    task = Task()
    forecaster.observe(task, running(30), 10.0)
    forecaster.observe(task, running(90), 20.0)
    task.last_seen = 20.0
    forecaster.remember(task)
    forecaster.finished("t", task, 21.0, error=1.0)  # 0.7 s left by its line, known within 1 s: no lesson
    assert len(forecaster.line.sample) == 0
    assert len(forecaster.durations.sample) == 1  # how long it took is learned all the same
    forecaster.finished("u", task, 21.0, error=0.1)
    assert len(forecaster.line.sample) == 1


def test_a_source_that_misses_loses_its_weight() -> None:
    forecaster = Forecaster(random.Random(5))
    source = forecaster.estimate
    assert source.level() == RISK
    for _ in range(math.ceil(SCORED) + 5):
        audited = Task()
        audited.trials = [("estimate", 50.0), ("durations", 5.0)]
        forecaster.finished("a", audited, 20.0)  # finished long before the estimate's low quantile
    assert source.level() is None  # dropped: it missed every time
    assert forecaster.durations.level() == RISK  # the source that held keeps its weight
    task = Task()
    forecaster.observe(task, running(eta=60.0), 1.0)
    task.last_seen = 1.0
    assert all(finish.source != "estimate" for finish in forecaster.candidates(task, 1.0))


def test_a_source_that_misses_a_little_is_read_lower() -> None:
    forecaster = Forecaster(random.Random(6))
    for index in range(200):
        audited = Task()
        audited.trials = [("line", 10.0)]
        forecaster.finished("a", audited, 9.0 if index % 12 == 0 else 11.0)  # about 8 % misses
    level = forecaster.line.level()
    assert level is not None and level < RISK
