"""Prices and estimates (hailuo_async/_prices.py): the default table and its sources, user tables, effective
durations and resolutions, exact sums (docs/providers.md, "Prices")."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

from hailuo_async import (
    DEFAULT_PRICES,
    Estimate,
    GenerationRequest,
    HailuoClient,
    HttpRequest,
    HttpResponse,
    InvalidRequestError,
    MockTransport,
    Price,
    PriceTable,
    estimate,
)
from hailuo_async._exceptions import format_usd

FIRST = "https://example.com/first.jpg"


def unused(request: HttpRequest) -> HttpResponse:
    raise AssertionError(f"nothing is sent to estimate: {request}")


NO_NETWORK = MockTransport(unused)
HAILUO_02, HAILUO_23, HAILUO_23_FAST = "MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast"

PUBLISHED = {  # the figures, MiniMax's pay-as-you-go prices
    (HAILUO_02, "512p", 6): 0.10,
    (HAILUO_02, "512p", 10): 0.15,
    (HAILUO_02, "768p", 6): 0.28,
    (HAILUO_02, "768p", 10): 0.56,
    (HAILUO_02, "1080p", 6): 0.49,
    (HAILUO_23, "768p", 6): 0.28,
    (HAILUO_23, "768p", 10): 0.56,
    (HAILUO_23, "1080p", 6): 0.49,
    (HAILUO_23_FAST, "768p", 6): 0.19,
    (HAILUO_23_FAST, "768p", 10): 0.32,
    (HAILUO_23_FAST, "1080p", 6): 0.33,
}


# -- the default table ----------------------------------------------------------------------------------------


def test_the_default_table_is_minimax_s_published_prices_each_with_source_and_date() -> None:
    assert {(m, r, d): p.usd for (provider, m, r, d), p in DEFAULT_PRICES.items()} == PUBLISHED
    for (provider, *_), price in DEFAULT_PRICES.items():
        assert provider == "minimax"
        assert "platform.minimax.io" in price.source
        assert price.as_of == "2026-01"


@pytest.mark.parametrize("provider", ["apimart", "toapis"])
def test_gateways_have_no_default_price(provider: str) -> None:
    quote = estimate(["a", GenerationRequest("b", model=HAILUO_23, duration=10)], provider=provider)
    assert quote.total == 0 and not quote.complete
    assert [i.index for i in quote.unpriced] == [0, 1]
    assert all(i.usd is None and i.source is None for i in quote.items)


# -- user tables ----------------------------------------------------------------------------------------------


def test_a_user_table_is_normalised() -> None:
    data: Any = {" MiniMax ": {"minimax-hailuo-2.3": {"1080P": {"6": 0.4}, "768p": {6: 1, "10s": 0.5}}}}
    table = PriceTable.from_dict(data, as_of="2026-03")
    assert table.get("minimax", HAILUO_23, "1080p", 6) == Price(usd=0.4, source="your price table", as_of="2026-03")
    assert table.get("minimax", HAILUO_23, "768p", 6) == Price(usd=1.0, source="your price table", as_of="2026-03")
    assert table.get("minimax", HAILUO_23, "768p", 10) is not None
    assert table.get("minimax", HAILUO_02, "768p", 6) is None  # not named: no price, never a guess
    assert len(table) == 3
    assert table.to_dict() == {"minimax": {HAILUO_23: {"1080p": {6: 0.4}, "768p": {6: 1.0, 10: 0.5}}}}
    assert PriceTable.from_dict(table.to_dict(), as_of="2026-03") == table
    assert PriceTable.from_dict(table.to_dict()) != table  # the date is part of a price
    assert repr(table) == "PriceTable(3 prices for minimax)"


@pytest.mark.parametrize(
    ("data", "value", "allowed"),
    [
        ({"replicate": {}}, "replicate", "a provider name: apimart, minimax, toapis"),
        ({"minimax": {"Hailuo-3": {}}}, "Hailuo-3", "MiniMax-Hailuo-2.3-Fast"),
        ({"minimax": {HAILUO_23: {"512p": {6: 0.1}}}}, "512p", "768p, 1080p"),
        ({"apimart": {HAILUO_02: {"768p": {6: 0.1}}}}, 6, "5, 10"),
        ({"minimax": {HAILUO_02: {"768p": {6: -0.1}}}}, -0.1, "a price in US dollars >= 0"),
        ({"minimax": {HAILUO_02: {"768p": {6: True}}}}, True, "a price in US dollars >= 0"),
        ({"minimax": {HAILUO_02: {"768p": {6: math.nan}}}}, math.nan, "a price in US dollars >= 0"),
        ({"minimax": {HAILUO_02: {"768p": {6: "0.28"}}}}, "0.28", "a price in US dollars >= 0"),
        ({"minimax": {HAILUO_02: {"768p": [0.28]}}}, [0.28], "{duration: usd}"),
        ({"minimax": [HAILUO_02]}, [HAILUO_02], "{model: {resolution: {duration: usd}}}"),
    ],
)
def test_a_bad_user_table_is_refused_naming_what_is_allowed(data: Any, value: object, allowed: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        PriceTable.from_dict(data)
    assert info.value.parameter == "prices"
    assert info.value.value == value or (value != value and info.value.value != info.value.value)
    assert allowed in info.value.allowed


def test_prices_replace_the_default_table() -> None:
    mine = {"apimart": {HAILUO_02: {"768p": {5: 0.2, 10: 0.4}}}}
    client = HailuoClient("apimart", api_key="k", transport=NO_NETWORK, prices=mine)
    assert client.prices == PriceTable.from_dict(mine)
    quote = client.estimate(["a", GenerationRequest("b", duration=10), GenerationRequest("c", resolution="512p")])
    assert [i.usd for i in quote.items] == [0.2, 0.4, None]
    minimax = HailuoClient("minimax", api_key="k", transport=NO_NETWORK, prices=mine)
    assert minimax.estimate(["a"]).unpriced  # the user's table has no MiniMax prices: the defaults are gone
    assert HailuoClient("minimax", api_key="k", transport=NO_NETWORK).prices is DEFAULT_PRICES


# -- estimates ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "expected_duration"),
    [("apimart", 5), ("toapis", 6), ("minimax", 6)],
)
def test_an_item_without_duration_or_resolution_is_priced_at_the_provider_defaults(
    provider: str, expected_duration: int
) -> None:
    table = PriceTable.from_dict({provider: {HAILUO_02: {"768p": {expected_duration: 0.3}}}})
    (item,) = estimate(["a cat"], provider=provider, prices=table).items
    assert (item.model, item.resolution, item.duration, item.usd) == (HAILUO_02, "768p", expected_duration, 0.3)
    assert item.source == "your price table"


def test_the_2_3_models_default_to_6_seconds_on_apimart_too() -> None:
    table = {"apimart": {HAILUO_23: {"768p": {6: 0.25}}}}
    assert estimate([GenerationRequest("a", model=HAILUO_23)], provider="apimart", prices=table).total == 0.25


def test_an_estimate_adds_up_exactly_and_groups_its_lines() -> None:
    items: list[str | GenerationRequest] = [
        *["a cat"] * 3,
        GenerationRequest("b", model=HAILUO_23, resolution="1080P"),
        GenerationRequest("c", model=HAILUO_23_FAST, first_frame=FIRST, duration=10),
        GenerationRequest("d", resolution="512p", duration=10, first_frame=FIRST),
    ]
    quote = estimate(items, provider="minimax")
    assert isinstance(quote, Estimate)
    assert quote.provider == "minimax" and quote.complete
    assert quote.total == 0.84 + 0.49 + 0.32 + 0.15
    assert estimate(["a"] * 3, provider="minimax").total == 0.84  # not 0.8400000000000001
    lines = [(x.model, x.resolution, x.duration, x.count, x.unit_usd, x.subtotal_usd) for x in quote.lines()]
    assert lines == [
        (HAILUO_02, "768p", 6, 3, 0.28, 0.84),
        (HAILUO_23, "1080p", 6, 1, 0.49, 0.49),
        (HAILUO_23_FAST, "768p", 10, 1, 0.32, 0.32),
        (HAILUO_02, "512p", 10, 1, 0.15, 0.15),
    ]


def test_a_combination_the_table_does_not_price_is_listed_never_guessed() -> None:
    table = {"minimax": {HAILUO_02: {"768p": {6: 0.28}}}}
    quote = estimate(["a", GenerationRequest("b", duration=10), "c"], provider="minimax", prices=table)
    assert quote.total == 0.56
    assert [(i.index, i.duration, i.usd) for i in quote.unpriced] == [(1, 10, None)]
    assert quote.lines()[1].unit_usd is None and quote.lines()[1].subtotal_usd is None


def test_estimate_is_frozen_and_encodable() -> None:
    quote = estimate(["a"], provider="minimax")
    with pytest.raises(AttributeError):
        quote.total = 0  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(quote))["total"] == 0.28


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.28, "$0.28"), (1234.5, "$1,234.50"), (0.2928, "$0.2928"), (0, "$0.00"), (0.1 + 0.2, "$0.30")],
)
def test_format_usd(amount: float, text: str) -> None:
    assert format_usd(amount) == text
