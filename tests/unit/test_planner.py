"""The planner's contract on fixtures: never more checks than a loop at ``max_lag``, a beat of the loop when
nothing is known, a jump past what the forecast says cannot be the finish, waits for the probes' news, the
``max_interval`` cap; and the poller's order of due checks. Pure: no I/O, the clock never runs."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hailuo_async import FakeClock, GenerationRequest, HttpRequest, HttpResponse, MockTransport, PollPolicy, Task
from hailuo_async._config import RetryPolicy
from hailuo_async._forecast import LATE_ALARM, Forecaster
from hailuo_async._models import TaskState, TaskStatus
from hailuo_async._pacer import RequestPacer
from hailuo_async._planner import Entry, Planner
from hailuo_async._poller import Poller
from hailuo_async._sender import PacedSender
from hailuo_async.providers import get_provider

LAG = 2.0
STEP = Planner.AIM * LAG


def task(task_id: str = "t", submitted_at: float = 0.0) -> Task:
    return Task(
        provider="apimart", task_id=task_id, request=GenerationRequest("a paper boat"), submitted_at=submitted_at
    )


def planner(**policy: float) -> Planner:
    return Planner(PollPolicy(max_lag=LAG, jitter=0.0, **policy), Forecaster(random.Random(0)))  # type: ignore[arg-type]


def planned(plan: Planner, started: float = 0.0) -> Entry:
    plan.forecaster.probes_taken = Forecaster.PROBES  # past the probes: an ordinary task
    plan.forecaster.AUDIT = 0.0
    return plan.enrol(task(), started, None)


def teach(plan: Planner, durations: list[float]) -> None:
    for index, duration in enumerate(durations):
        done = Entry(task(f"done{index}"), 0.0, None)
        plan.forecaster.finished(f"done{index}", done, duration)


def test_nothing_known_the_plain_loop() -> None:
    plan = planner()
    entry = planned(plan)
    assert plan.next_check(entry, 0.0) == pytest.approx(LAG)  # the loop's first beat: max_lag after the submit
    entry.checks, entry.last_seen = 1, LAG
    assert plan.next_check(entry, LAG) == pytest.approx(2 * LAG)
    assert not entry.waiting


def test_a_task_checked_late_is_checked_again_one_beat_after_its_answer() -> None:
    plan = planner()
    entry = planned(plan)
    entry.checks, entry.last_seen = 1, 7.0  # the answer came late (a busy provider)
    assert plan.next_check(entry, 7.0) == pytest.approx(7.0 + STEP)


def test_a_sure_forecast_skips_the_beats_before_it() -> None:
    plan = planner()
    teach(plan, [60.0 + 0.1 * i for i in range(40)])  # every task took 60-64 s
    entry = planned(plan)
    when = plan.next_check(entry, 0.0)
    assert 55.0 < when < 61.0 + STEP  # one check, just after the earliest likely finish
    assert entry.covered > 55.0  # what the duration is learned from, once found finished


def test_a_forecast_within_a_beat_is_a_beat() -> None:
    plan = planner()
    teach(plan, [3.0 + 0.05 * i for i in range(40)])
    entry = planned(plan)
    entry.checks, entry.last_seen = 1, 2.0
    assert plan.next_check(entry, 2.0) == pytest.approx(max(2.0 + STEP, 2 * LAG))


def test_a_skip_must_save_a_check() -> None:
    # Durations spread evenly over 10-130 s: at 20 s the finish is as likely in any second of the next 110, so the
    # 3 % quantile is under two beats away: skipping to it would save no check for its risk. The beat it is.
    plan = planner()
    teach(plan, [10.0 + 120.0 * i / 99 for i in range(100)])
    entry = planned(plan)
    entry.checks, entry.last_seen = 5, 20.0
    assert plan.next_check(entry, 20.0) == pytest.approx(20.0 + STEP)
    # Durations all near 60 s: from 20 s the same risk skips some twenty beats.
    sure = planner()
    teach(sure, [60.0 + 0.05 * i for i in range(100)])
    entry = planned(sure)
    entry.checks, entry.last_seen = 5, 20.0
    assert sure.next_check(entry, 20.0) > 55.0


def test_a_beat_planned_on_little_is_planned_again_when_due_if_the_batch_showed_more() -> None:
    plan = planner()
    entry = planned(plan)
    entry.checks, entry.last_seen = 1, 2.0
    due = plan.next_check(entry, 2.0)  # nothing finished yet: the beat
    assert due == pytest.approx(2 * LAG) and not plan.stale(entry)
    teach(plan, [60.0 + 0.05 * i for i in range(40)])  # meanwhile forty tasks ended, all near 60 s
    assert plan.stale(entry)
    later = plan.next_check(entry, due)  # planned again when due, on what is known now
    assert later > 55.0 and not plan.stale(entry)  # an aimed check stands


def test_the_url_fetch_counts_in_the_lag() -> None:
    plan = planner()
    entry = planned(plan)
    entry.checks, entry.last_seen = 1, 7.0
    plan.fetched(0.5)  # MiniMax: the URL comes one more request after the status
    assert plan.next_check(entry, 7.0) == pytest.approx(7.0 + STEP - 0.1 * 0.5)


def test_before_any_finish_a_task_waits_for_the_probes() -> None:
    plan = planner()
    probes = [plan.enrol(task(f"probe{i}"), 0.0, None) for i in range(Forecaster.PROBES)]
    assert all(probe.role == "probe" for probe in probes)
    plan.forecaster.AUDIT = 0.0  # an ordinary task, not a random audit
    entry = plan.enrol(task(), 0.0, None)
    assert entry.role == "planned"
    when = plan.next_check(entry, 0.0)
    assert entry.waiting and when == pytest.approx(1.1 * LAG)  # plan again once the probes are seen again
    for probe in probes:
        plan.forecaster.saw(probe, 5.0)  # as the poller reports each answer that found it going
    when = plan.next_check(entry, 2.2)
    assert entry.waiting and when == pytest.approx(5.0 + 1.1 * LAG)
    assert plan.next_check(probes[0], 5.0) == pytest.approx(max(5.0 + STEP, LAG))  # probes loop meanwhile


def test_a_long_wait_for_the_first_finish_takes_more_probes() -> None:
    # Tasks that end before the first probe does are found only once it has: past RECRUIT max_lags of waiting,
    # that is later than the contract allows, so waiting tasks become probes too (checked like the loop), up to
    # twice PROBES in all.
    plan = planner()
    probes = [plan.enrol(task(f"probe{i}"), 0.0, None) for i in range(Forecaster.PROBES)]
    plan.forecaster.AUDIT = 0.0
    waiting = [plan.enrol(task(f"t{i}"), 0.0, None) for i in range(Forecaster.PROBES + 5)]
    for probe in probes:
        plan.forecaster.saw(probe, Planner.RECRUIT * LAG - 0.5)
    assert all(plan.next_check(entry, 2.0) > 2.0 for entry in waiting)  # not yet: they wait for news
    assert all(entry.role == "planned" for entry in waiting)
    for probe in probes:
        plan.forecaster.saw(probe, Planner.RECRUIT * LAG)
    now = Planner.RECRUIT * LAG + 0.5
    whens = [plan.next_check(entry, now) for entry in waiting]
    recruited = [entry for entry in waiting if entry.role == "probe"]
    assert len(recruited) == Forecaster.PROBES  # as many again, no more
    assert all(when == pytest.approx(now) for entry, when in zip(waiting, whens, strict=True) if entry.role == "probe")
    assert all(entry.waiting for entry in waiting if entry.role == "planned")  # the rest still wait
    assert not plan.forecaster.recruit("spare", waiting[-1])  # as many again, no more
    plan.forecaster.PROBES = 2 * Forecaster.PROBES  # room for more, but:
    plan.forecaster.finished("probe0", probes[0], now)
    assert not plan.forecaster.recruit("spare", waiting[-1])  # once a task has finished, nobody is recruited


def test_probes_that_are_not_seen_again_do_not_hold_a_task_back() -> None:
    plan = planner()
    for i in range(Forecaster.PROBES):
        plan.enrol(task(f"probe{i}"), 0.0, None)
    entry = plan.enrol(task(), 0.0, None)
    when = plan.next_check(entry, 5.0)  # the probes were last seen at 0 and it is 5 s on
    assert not entry.waiting and when == pytest.approx(5.0)


def test_no_gap_beyond_max_interval() -> None:
    plan = planner(max_interval=30.0)
    teach(plan, [600.0 + i for i in range(40)])
    entry = planned(plan)
    assert plan.next_check(entry, 0.0) == pytest.approx(30.0)


def test_a_source_whose_checks_find_tasks_ended_early_reaches_less_far() -> None:
    # Durations of 600 s learned: a new task's check goes as far as max_interval allows. Evidence that the durations
    # come late (their aimed checks found tasks ended when they said that was unlikely) shortens that reach: to
    # max_interval / (1 + evidence), and a check already aimed further comes in to it, never before the loop's budget.
    plan = planner(max_interval=60.0)
    teach(plan, [600.0 + i for i in range(40)])
    entry = planned(plan)
    assert plan.reach("durations") == pytest.approx(60.0)
    assert plan.next_check(entry, 0.0) == pytest.approx(60.0)
    assert entry.aim_source == "durations"
    plan.forecaster.durations.drift = 2.0
    assert plan.reach("durations") == pytest.approx(20.0) and plan.reach("progress") == pytest.approx(60.0)
    assert plan.within_reach(entry, 60.0) == pytest.approx(20.0)  # last seen at its submit
    assert plan.within_reach(entry, 15.0) == pytest.approx(15.0)  # within reach already: unchanged
    entry.checks = 15
    assert plan.within_reach(entry, 60.0) == pytest.approx(16 * LAG)  # never more checks than the loop
    assert plan.next_check(planned(plan), 0.0) == pytest.approx(20.0)


def test_audits_are_polled_like_the_loop_and_record_every_source() -> None:
    plan = planner()
    teach(plan, [10.0 + 0.2 * i for i in range(40)])
    plan.forecaster.probes_taken = Forecaster.PROBES
    plan.forecaster.AUDIT = 1.0
    entry = plan.enrol(task(), 0.0, None)
    assert entry.role == "audit" and entry.trials == []
    entry.checks, entry.last_seen = 1, LAG
    assert plan.next_check(entry, LAG) == pytest.approx(2 * LAG)
    assert [name for name, _ in entry.trials] == ["durations"]


def test_duration_is_the_middle_of_when_it_may_have_ended() -> None:
    entry = Entry(task(), 100.0, None)
    entry.last_seen, entry.covered = 10.0, 14.0
    plan = planner()
    teach(plan, [10.0 + 0.2 * i for i in range(40)])
    assert plan.duration(entry, 100.0 + 16.0) == (13.0, 3.0)  # a check on the beat: after the last answer
    entry.aim = 10.0  # the check was aimed from the durations when last seen, and they hold
    assert plan.duration(entry, 100.0 + 16.0) == (15.0, 1.0)  # after the aimed low quantile, before the check


@settings(max_examples=200, deadline=None)
@given(
    durations=st.lists(st.floats(1.0, 300.0), min_size=0, max_size=60),
    progress=st.lists(st.integers(1, 99), min_size=0, max_size=5),
    eta=st.one_of(st.none(), st.floats(1.0, 600.0)),
    checks=st.integers(0, 30),
    seen=st.floats(0.0, 400.0),
    late=st.floats(0.0, 50.0),
    lag=st.sampled_from([0.5, 2.0, 10.0]),
)
def test_never_more_checks_than_the_loop(
    durations: list[float],
    progress: list[int],
    eta: float | None,
    checks: int,
    seen: float,
    late: float,
    lag: float,
) -> None:
    # Whatever the batch has learned and whatever the task said, its next check (the (checks+1)-th) comes no
    # earlier than the loop at max_lag would send it, and never before its last answer.
    plan = Planner(PollPolicy(max_lag=lag), Forecaster(random.Random(1)))
    teach(plan, durations)
    entry = planned(plan, started=1000.0)
    entry.checks, entry.last_seen = checks, seen
    for index, value in enumerate(sorted(progress)):
        plan.forecaster.observe(entry, TaskStatus(state=TaskState.RUNNING, progress=value, eta=eta), index + 1.0)
    now = 1000.0 + seen + late
    when = plan.next_check(entry, now)
    assert when >= 1000.0 + (checks + 1) * lag - 1e-9
    assert when >= now


# -- the poller's order of due checks ------------------------------------------------------------------------


def _never(request: HttpRequest) -> HttpResponse:
    raise AssertionError("no request is sent in these tests")


def _poller(clock: FakeClock, answer: Callable[[HttpRequest], HttpResponse] = _never) -> Poller:
    return Poller(
        provider=get_provider("apimart"),
        sender=PacedSender(MockTransport(answer), RequestPacer(clock), rate_limit_default=1.0),
        policy=PollPolicy(jitter=0.0),
        retry=RetryPolicy(),
        clock=clock,
        rng=random.Random(0),
    )


@pytest.mark.anyio
async def test_checks_likely_to_find_a_finish_go_first() -> None:
    clock = FakeClock()
    poller = _poller(clock)
    for name in ("routine", "likely", "other"):
        poller.track(task(name), lambda outcome: None, deadline=None)
    entries = poller._entries
    entries["likely"].urgent = True
    for entry in entries.values():
        entry.waiting = False
        poller._schedule(entry, clock.monotonic() + 1.0)
    assert poller._next_due() == pytest.approx(clock.monotonic() + 1.0)
    clock.advance(1.0)
    assert poller._next_due() is None
    order = [entry.task.task_id for entry in iter(poller._pop_due, None)]
    assert order[0] == "likely" and sorted(order[1:]) == ["other", "routine"]


@pytest.mark.anyio
async def test_a_wait_for_news_needs_no_token() -> None:
    clock = FakeClock()
    poller = _poller(clock)
    for index in range(Forecaster.PROBES):
        poller.track(task(f"probe{index}", clock.time()), lambda outcome: None, deadline=None)
    poller._forecaster.AUDIT = 0.0
    poller.track(task("waiting", clock.time()), lambda outcome: None, deadline=None)
    entry = poller._entries["waiting"]
    assert entry.waiting
    clock.advance(1.1 * LAG)  # its moment to plan again comes; the probes have not been seen: a check is due
    assert poller._next_due() is None
    popped = list(iter(poller._pop_due, None))
    assert entry in popped and not entry.waiting


@pytest.mark.anyio
async def test_a_task_whose_wait_is_cut_short_by_max_interval_still_hears_the_first_finish() -> None:
    # Probes seen running 40 s after their submit: a task waiting with them would look again only after half its age
    # more (60 s), which the max_interval cap (60 s) makes a check rather than a time to plan again. It must still be
    # planned again when the first task finishes: from then on it may end any moment, and a check left at 60 s would
    # find tasks that ended at 50 s ten seconds late (a batch of long tasks whose estimate said a quarter of it).
    clock = FakeClock()
    poller = _poller(clock)
    start = clock.monotonic()
    for index in range(Forecaster.PROBES):
        poller.track(task(f"probe{index}", clock.time()), lambda outcome: None, deadline=None)
    poller._forecaster.AUDIT = 0.0
    poller.track(task("long", clock.time()), lambda outcome: None, deadline=None)
    entry = poller._entries["long"]
    poller._forecaster.probes_taken = 2 * Forecaster.PROBES  # as many more probes recruited as may be
    clock.advance(40.0)
    probes = [poller._entries[f"probe{index}"] for index in range(Forecaster.PROBES)]
    for probe in probes:
        poller._forecaster.saw(probe, 40.0)
    poller._plan(entry, clock.monotonic())
    assert not entry.waiting  # its next moment is a check: the cap's
    assert _due(poller, entry) == pytest.approx(start + 60.0)
    clock.advance(1.0)
    poller._learn(probes[0], clock.monotonic(), exact=True)  # the first finish
    assert _due(poller, entry) <= clock.monotonic() + LAG  # planned again on the news: a beat away, not at 60 s


@pytest.mark.anyio
async def test_checks_aimed_far_come_in_as_evidence_grows_that_their_source_is_late() -> None:
    # Durations of 600 s learned: every task's check is aimed a whole max_interval (60 s) out. A check from that
    # source then finds its task ended 10 s in, which the source gave a small chance: the checks already aimed from
    # it come in to the shorter reach that evidence allows. Once a find drops the source, they are planned again
    # without it (here: the plain loop, nothing else being known), not left to find their tasks ended long before.
    clock = FakeClock()
    poller = _poller(clock, _all_completed)
    teach(poller._planner, [600.0 + i for i in range(40)])
    poller._forecaster.probes_taken = Forecaster.PROBES
    poller._forecaster.AUDIT = 0.0
    start = clock.monotonic()
    for index in range(6):
        poller.track(task(f"t{index}", clock.time()), lambda outcome: None, deadline=None)
    entries = [poller._entries[f"t{index}"] for index in range(6)]
    assert all(_due(poller, entry) == pytest.approx(start + 60.0) for entry in entries)
    assert all(entry.aim_source == "durations" for entry in entries)
    clock.advance(10.0)
    durations = poller._forecaster.durations

    await _check_now(poller, entries[0])  # a surprise: ended 10 s in
    assert 1.0 < durations.drift < LATE_ALARM
    reach = 60.0 / (1.0 + durations.drift)
    assert all(_due(poller, entry) == pytest.approx(start + reach) for entry in entries[1:])

    durations.drift = LATE_ALARM - 0.5  # one more such find drops the source
    await _check_now(poller, entries[1])
    assert durations.level() is None
    assert all(_due(poller, entry) <= clock.monotonic() + LAG for entry in entries[2:])


@pytest.mark.anyio
async def test_checks_aimed_from_a_source_the_audits_drop_are_planned_again() -> None:
    # The audits (tasks polled like the loop) score every source too: one more miss takes the durations past what
    # they may miss, and they are not used. The checks already aimed from them, a whole max_interval out, are planned
    # again on what is known now, as when their own checks show them late.
    clock = FakeClock()
    poller = _poller(clock)
    teach(poller._planner, [600.0 + i for i in range(40)])
    poller._forecaster.probes_taken = Forecaster.PROBES
    poller._forecaster.AUDIT = 0.0
    for index in range(3):
        poller.track(task(f"t{index}", clock.time()), lambda outcome: None, deadline=None)
    entries = [poller._entries[f"t{index}"] for index in range(3)]
    durations = poller._forecaster.durations
    durations.scored, durations.misses = 20.0, 2.3  # just under DROP times the promised rate
    assert durations.level() is not None
    clock.advance(10.0)
    audit = Entry(task("audit"), clock.monotonic() - 50.0, None)
    audit.trials = [("durations", 600.0)]
    poller._learn(audit, clock.monotonic(), exact=True)  # it took 50 s where the durations said at least 600
    assert durations.level() is None
    assert all(_due(poller, entry) <= clock.monotonic() + LAG for entry in entries)


async def _check_now(poller: Poller, entry: Entry) -> None:
    """Send ``entry``'s check now, as the loop does once it is due (out of the schedule, in flight)."""
    entry.version += 1
    await poller._check(entry)


def _all_completed(request: HttpRequest) -> HttpResponse:
    task_id = request.path.rsplit("/", 1)[-1].split("?")[0]
    body = (
        b'{"code":200,"data":{"id":"%s","status":"completed","progress":100,'
        b'"result":{"videos":[{"url":["https://cdn.example/%s.mp4"]}]}}}' % (task_id.encode(), task_id.encode())
    )
    return HttpResponse(status=200, body=body)


def _due(poller: Poller, entry: Entry) -> float:
    """When ``entry`` is next due in ``poller``'s schedule."""
    (due,) = [
        when
        for when, _, task_id, version in poller._heap + poller._routine
        if task_id == entry.task.task_id and version == entry.version
    ]
    return due
