"""The spending ledger (hailuo_async/_ledger.py): what a finished, failed or timed-out task adds to a client's
spending, reservations against a cap, and bad caps (docs/providers.md, "Prices")."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hailuo_async import (
    DEFAULT_PRICES,
    Generation,
    GenerationFailedError,
    GenerationRequest,
    GenerationTimeoutError,
    InvalidRequestError,
    PriceTable,
)
from hailuo_async._ledger import Ledger, SpendCap
from hailuo_async._prices import to_micros
from hailuo_async.providers import get_provider

HAILUO_02 = "MiniMax-Hailuo-02"

# -- what tasks add to the spending ---------------------------------------------------------------------------


def generation(task_id: str, *, cost: float | None = None) -> Generation:
    return Generation(
        provider="x",
        task_id=task_id,
        request=GenerationRequest("a"),
        video_url="https://cdn.example/v.mp4",
        expires_at=None,
        submitted_at=0.0,
        completed_at=1.0,
        cost=cost,
    )


def ledger(provider: str, prices: Any = None, cap: float | None = None) -> Ledger:
    table = DEFAULT_PRICES if prices is None else PriceTable.from_dict(prices)
    return Ledger(get_provider(provider), table, None if cap is None else SpendCap(cap))


def test_an_estimate_stands_until_the_provider_reports_a_charge() -> None:
    book = ledger("minimax")
    book.reserve(GenerationRequest("a"), book.caps()).commit("t1")
    book.reserve(GenerationRequest("b"), book.caps()).commit("t2")
    assert book.spent() == (0.56, 0.56, 0)
    done = book.settle(generation("t1"))
    assert isinstance(done, Generation)
    assert (done.estimated_cost, done.charged, done.charge_is_estimate) == (0.28, 0.28, True)
    assert book.spent() == (0.56, 0.56, 0)
    assert book.settle(done) is done  # settled once; a second call changes nothing


def test_a_reported_charge_replaces_the_estimate() -> None:
    book = ledger("apimart", {"apimart": {HAILUO_02: {"768p": {5: 0.25}}}})
    book.reserve(GenerationRequest("a"), ()).commit("t1")
    done = book.settle(generation("t1", cost=0.2928))
    assert isinstance(done, Generation)
    assert (done.cost, done.estimated_cost, done.charged, done.charge_is_estimate) == (0.2928, 0.25, 0.2928, False)
    assert book.spent() == (0.2928, 0.0, 0)


def test_apimart_refunds_failures_others_keep_the_estimate() -> None:
    refunded = ledger("apimart", {"apimart": {HAILUO_02: {"768p": {5: 0.25}}}})
    refunded.reserve(GenerationRequest("a"), ()).commit("t1")
    refunded.settle(GenerationFailedError("rejected", provider="apimart", task_id="t1"))
    assert refunded.spent() == (0.0, 0.0, 0)
    kept = ledger("minimax")
    kept.reserve(GenerationRequest("a"), ()).commit("t1")
    kept.settle(GenerationFailedError("rejected", provider="minimax", task_id="t1"))
    assert kept.spent() == (0.28, 0.28, 0)  # not documented as refunded: the safe side for a cap


def test_a_timed_out_task_keeps_its_cost_and_can_still_settle() -> None:
    book = ledger("minimax")
    book.reserve(GenerationRequest("a"), ()).commit("t1")
    book.settle(GenerationTimeoutError(provider="minimax", task_id="t1", waited=600))
    assert book.spent() == (0.28, 0.28, 0)
    book.settle(generation("t1"))
    assert book.spent() == (0.28, 0.28, 0)


def test_a_task_without_a_price_is_counted_apart() -> None:
    book = ledger("toapis")
    book.reserve(GenerationRequest("a"), ()).commit("t1")
    done = book.settle(generation("t1"))
    assert isinstance(done, Generation)
    assert (done.estimated_cost, done.charged) == (None, None)
    assert book.spent() == (0.0, 0.0, 1)


def test_a_settled_task_leaves_no_per_item_state() -> None:
    book = ledger("minimax")
    for n in range(50):
        book.reserve(GenerationRequest("a"), ()).commit(f"t{n}")
        book.settle(generation(f"t{n}"))
    assert book._open == {}
    assert book.spent()[0] == pytest.approx(50 * 0.28)


def test_a_released_reservation_frees_the_cap() -> None:
    book = ledger("minimax", cap=0.3)
    (cap,) = book.caps()
    hold = book.reserve(GenerationRequest("a"), book.caps())
    assert cap.held == to_micros(0.28)
    hold.release()
    hold.release()
    assert cap.held == 0
    book.reserve(GenerationRequest("a"), book.caps()).commit("t1")
    assert cap.held == to_micros(0.28) and book.spent() == (0.28, 0.28, 0)


@pytest.mark.parametrize("cap", [-1, math.inf, math.nan, "1", True])
def test_a_bad_cap_is_refused(cap: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        SpendCap(cap)
    assert info.value.parameter == "max_spend"
