"""Pure logic of the poller on fixtures: what it learns from a batch (quantiles, first looks, queueing share), the
order in which due checks go out, and the pacer's tally of accepted requests. No I/O: the poller is built over a
MockTransport that is never called and a FakeClock that is never run."""

from __future__ import annotations

import math
import random

import pytest

from hailuo_async import FakeClock, GenerationRequest, HttpRequest, HttpResponse, MockTransport, PollPolicy, Task
from hailuo_async._config import RetryPolicy
from hailuo_async._forecast import BatchModel as _Model
from hailuo_async._forecast import Sample as _Sample
from hailuo_async._forecast import estimate as _estimate
from hailuo_async._pacer import RequestPacer, _Tally
from hailuo_async._poller import Poller
from hailuo_async._sender import PacedSender
from hailuo_async.providers import get_provider


def _never(request: HttpRequest) -> HttpResponse:
    raise AssertionError("no request is sent in these tests")


def _poller(clock: FakeClock) -> Poller:
    return Poller(
        provider=get_provider("apimart"),
        sender=PacedSender(MockTransport(_never), RequestPacer(clock), rate_limit_default=1.0),
        policy=PollPolicy(jitter=0.0),
        retry=RetryPolicy(),
        clock=clock,
    )


def _task(task_id: str, clock: FakeClock) -> Task:
    return Task(
        provider="apimart",
        task_id=task_id,
        request=GenerationRequest("a paper boat"),
        submitted_at=clock.time(),
    )


def _sample(values: list[float]) -> _Sample:
    sample = _Sample()
    for value in values:
        sample.add(value)
    return sample


@pytest.mark.parametrize("sigma", [0.3, 0.5, 0.8])
def test_low_quantile_of_a_lognormal_batch_from_its_first_tasks(sigma: float) -> None:
    # From the 40 first tasks of a batch, the 5th percentile of how long tasks take comes out close to the truth
    # (within 0.8 sigma in log terms, i.e. within a half for sigma 0.5) for 45 batches of 50.
    truth = 15.0 * math.exp(-1.645 * sigma)
    misses = 0
    for seed in range(50):
        rng = random.Random(seed)
        sample = _sample([15.0 * math.exp(rng.gauss(0.0, sigma)) for _ in range(40)])
        estimate = _estimate(sample, 0.05, least=3)
        assert estimate is not None
        misses += not (abs(math.log(estimate / truth)) <= 0.8 * sigma)
    assert misses <= 5


def test_a_tiny_sample_is_read_early() -> None:
    sample = _sample([10.0, 12.0, 20.0, 30.0])
    estimate = _estimate(sample, 0.05, least=3)
    assert estimate is not None and estimate < 0.6 * 12.0  # lowered while the sample is tiny
    assert _estimate(_sample([10.0, 12.0]), 0.05, least=3) is None
    assert _estimate(sample, 0.5, least=3) == 20.0  # the median is the sample's own


def test_first_look_prefers_better_evidence_and_finished_tasks_bound_it() -> None:
    model = _Model()
    assert model.first_look(0.05) is None
    for value in (8.0, 14.0, 15.0, 20.0, 30.0):
        model.estimates.add(value)
    value, level = model.first_look(0.05) or (0.0, 0)
    assert level == 1
    for index in range(19):
        model.predicted.add(20.0 + index)
    assert (model.first_look(0.05) or (0.0, 0))[1] == 1  # a few predictions are not enough yet
    model.predicted.add(40.0)
    better, level = model.first_look(0.05) or (0.0, 0)
    assert level == 2 and better > value  # precise predictions replace the provider's noisy estimates
    for _ in range(5):
        model.durations.add(9.0)  # five tasks already finished in 9 s: no later first look than that
    bounded, level = model.first_look(0.05) or (0.0, 0)
    assert level == 2 and bounded <= 9.0


def test_queueing_share_spread_discounts_measurement_error() -> None:
    model = _Model()
    for share in (0.145, 0.15, 0.155, 0.148, 0.152):
        model.add_share(share, 0.01)  # measured with an error as large as their spread: they may all be alike
    alike = model.share_spread()
    other = _Model()
    for share in (0.145, 0.15, 0.155, 0.148, 0.152):
        other.add_share(share, 0.0)  # measured exactly: the tasks really differ
    assert alike < other.share_spread() + 0.01
    assert other.share_spread() > 0.002
    assert _Model().share_spread() == 0.1  # nothing measured: a wide guess


@pytest.mark.anyio
async def test_checks_aimed_at_a_finish_go_before_routine_ones() -> None:
    clock = FakeClock()
    poller = _poller(clock)
    for name in ("first-look", "aimed", "reading"):
        poller.track(_task(name, clock), lambda outcome: None, deadline=None, first_check=1.0)
    entries = poller._entries
    entries["aimed"].urgent = True
    entries["reading"].checks = 1  # an intermediate reading, not a first look
    for entry in entries.values():
        entry.cleared = True
        poller._schedule(entry, clock.monotonic() + 1.0)
    assert poller._next_due() == pytest.approx(clock.monotonic() + 1.0)  # nothing due yet: when the next is
    clock.advance(1.0)
    assert poller._next_due() is None
    order = [entry.task.task_id for entry in iter(poller._pop_due, None)]
    assert order[0] == "aimed" and sorted(order[1:]) == ["first-look", "reading"]


@pytest.mark.anyio
async def test_a_deferred_first_look_needs_no_token() -> None:
    clock = FakeClock()
    poller = _poller(clock)
    for index in range(_Model.PROBES):
        poller._model.estimates.add(20.0 + index)  # the batch knows tasks take about 20-40 s
    poller.track(_task("late", clock), lambda outcome: None, deadline=None, first_check=0.0)
    due = poller._next_due()  # the first look is due by the schedule, but the batch says to wait
    assert due is not None and due > clock.monotonic()
    assert poller._pop_due() is None


def test_tally_counts_accepted_requests_in_tenths_of_a_second() -> None:
    tally = _Tally()
    for step in range(100):  # 10 per second for 10 s
        tally.add(step / 10.0, keep=5.0)
    assert tally.since(9.0) == 10
    assert tally.since(0.0) == 51  # only the last 5 s (and the slot it started in) are kept
    tally.clear()
    assert tally.since(0.0) == 0
