"""The statistics the forecaster reads, on fixtures: Kaplan-Meier readings with tasks still running as censored
values, small samples read early by their own spread (the plus-one rule), the readings nearest a progress, and
forgetting what came before a moment. Pure: no I/O, no clock."""

from __future__ import annotations

import pytest

from hailuo_async._forecast import RISK
from hailuo_async._survival import ByProgress, Sample, Survival

# -- Kaplan-Meier ----------------------------------------------------------------------------------------------


def test_without_censoring_the_survival_reads_the_sample() -> None:
    values = [float(v) for v in range(1, 101)]
    survival = Survival(values, [])
    median = survival.quantile(0.0, 0.5)
    assert median is not None and 49.0 <= median <= 51.0
    assert survival.quantile(90.0, 0.5) == pytest.approx(95.0, abs=1.0)  # given it is past 90
    assert survival.quantile(100.0, 0.5) is None  # past everything seen: nothing known


def test_a_small_sample_reads_its_low_quantile_early_by_its_own_spread() -> None:
    low = Survival([10.0 + i for i in range(8)], []).quantile(0.0, RISK)
    assert low is not None and 8.0 < low < 10.0  # before the smallest, by about the spread between values
    alike = Survival([10.0] * 8, []).quantile(0.0, RISK)
    assert alike == pytest.approx(10.0)  # values all alike: nothing suggests earlier
    spread = Survival([1.0 + 3 * i for i in range(8)], []).quantile(0.0, RISK)
    assert spread is not None and spread < 1.0
    single = Survival([10.0], [12.0] * 10).quantile(0.0, RISK)
    assert single is not None and single < 5.0  # one finish says little: well before it
    assert Survival([10.0 + i for i in range(8)], []).quantile(12.5, RISK) is None  # five beyond 12.5: too few


def test_a_gap_inside_the_spread_is_not_taken_for_safe_with_few_values_beyond() -> None:
    # Ten finishes before the floor, then none until 20 s among the 16 values beyond it: that nobody ended between
    # 10.5 s and 20 s says little with so few, so the low quantile is not put just before 20 s (the plus-one rule).
    beyond = [20.0 + 0.2 * i for i in range(11)]
    inside = Survival([float(i) for i in range(1, 11)] + beyond, [30.0] * 5).quantile(10.5, RISK)
    assert inside is not None and 12.0 < inside < 16.0
    # The same values with the floor below them all: the gap up to the first is the sample's own.
    below = Survival(beyond, [30.0] * 5).quantile(10.5, RISK)
    assert below is not None and below > 19.0
    # Many values beyond the floor: the gap is evidence enough.
    many = Survival([float(i) for i in range(1, 11)] + beyond, [30.0] * 60).quantile(10.5, RISK)
    assert many is not None and many > 19.0


def test_tasks_still_running_move_the_quantiles_later() -> None:
    finished = [5.0, 5.5, 6.0, 6.2, 6.4, 6.6, 6.8, 7.0]  # the fast ones finished first
    naive = Survival(finished, []).quantile(0.0, 0.5)
    censored = Survival(finished, [8.0] * 72).quantile(0.0, RISK)  # 72 more seen running at 8 s
    assert naive is not None and naive <= 6.5
    assert censored is not None and censored >= 4.5  # eight finishes out of eighty: the low tail is far
    assert Survival(finished, [8.0] * 72).quantile(0.0, 0.5) is None  # the median lies beyond what was seen


def test_nearest_readings_by_progress() -> None:
    store = ByProgress()
    for progress in range(0, 100, 10):
        store.add(progress, float(progress))
    nearest = store.nearest(42, 3)
    assert nearest is not None
    values, reach = nearest
    assert sorted(values) == [30.0, 40.0, 50.0] and reach == 12
    assert ByProgress().nearest(42, 3) is None


# -- forgetting ------------------------------------------------------------------------------------------------


def test_a_sample_forgets_what_came_before_a_version() -> None:
    sample = Sample(size=4)
    for value in (9.0, 1.0, 5.0):
        sample.add(value)
    rise = sample.version
    for value in (3.0, 7.0):
        sample.add(value)
    assert sample.sorted == [1.0, 3.0, 5.0, 7.0]  # the oldest (9) went when the fifth came
    sample.forget_before(rise)
    assert sample.sorted == [3.0, 7.0] and len(sample) == 2
    assert sample.version == rise + 3  # what was read from it before does not hold
    assert sample.at_least(0.0) == [3.0, 7.0]


def test_readings_by_progress_forget_what_came_before_a_version() -> None:
    store = ByProgress()
    for progress in range(0, 50, 10):
        store.add(progress, 1.0)
    rise = store.version
    for progress in range(50, 100, 10):
        store.add(progress, 2.0)
    store.forget_before(rise)
    nearest = store.nearest(20, 5)
    assert nearest is not None and nearest[0] == [2.0] * 5  # only the five added since, however far
    assert store.nearest(20, 6) is None
