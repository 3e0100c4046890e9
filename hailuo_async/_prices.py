"""What videos cost: the published price tables with their sources, and estimates of what items will cost.

Data flow: a request -> its model's rules on the provider (:mod:`hailuo_async.providers`, ``ModelRules``) give the
duration and resolution it will really get -> a :class:`PriceTable` (:data:`DEFAULT_PRICES`, or the user's
``prices=``) gives their :class:`Price` -> :func:`estimate` adds the items up into an :class:`Estimate`, sending
nothing. While a client runs, its ledger (:mod:`._ledger`) looks each submit's price up here and holds it against
the spending caps. Amounts are added in whole micro-dollars (:func:`to_micros`), so that sums are exact. No I/O.

Prices come from published price lists only (docs/providers.md, "Prices"); a price that is not known stays unknown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeAlias, TypeGuard

import msgspec

from ._exceptions import InvalidRequestError
from ._models import GenerationRequest, canonical_model
from .providers import RULES, Provider, get_provider

__all__ = [
    "DEFAULT_PRICES",
    "USER_SOURCE",
    "Estimate",
    "EstimateLine",
    "ItemEstimate",
    "Price",
    "PriceKey",
    "PriceTable",
    "PriceTableData",
    "PriceTableInput",
    "as_price_table",
    "describe_unpriced",
    "estimate",
    "is_usd",
    "to_micros",
    "to_usd",
]

_MICROS = 1_000_000
USER_SOURCE = "your price table"
"""The source recorded for prices given by the user."""

PriceKey = tuple[str, str, str, int]
"""``(provider, model, resolution, duration)``: what one price is for."""

PriceTableData: TypeAlias = Mapping[str, Mapping[str, Mapping[str, Mapping[int, float] | Mapping[str, float]]]]
"""``{provider: {model: {resolution: {duration: usd}}}}``; durations as numbers, or as text (``"6"``, from JSON)."""


def to_micros(usd: float) -> int:
    """``usd`` dollars as whole micro-dollars (exact sums: three $0.28 videos make $0.84, not 0.8400000000000001)."""
    return round(usd * _MICROS)


def to_usd(micros: int) -> float:
    """``micros`` micro-dollars as US dollars."""
    return micros / _MICROS


def is_usd(value: object) -> TypeGuard[float]:
    """Whether ``value`` is an amount of US dollars: a number (not a bool), finite and >= 0."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """The price of one video, with where it was read."""

    usd: float
    """US dollars per video."""
    source: str
    """Where the price was published (or ``"your price table"``)."""
    as_of: str | None = None
    """When it was read (``YYYY-MM`` or ``YYYY-MM-DD``), where known."""


def _provider_name(provider: object) -> str:
    name = provider.strip().lower() if isinstance(provider, str) else None
    if name not in RULES:
        raise InvalidRequestError("prices", provider, "a provider name: " + ", ".join(sorted(RULES)))
    return str(name)


def _price_key(provider: object, model: object, resolution: object, duration: object) -> PriceKey:
    """A key of a price table, checked: a known provider, one of its models, a resolution and a duration that
    model takes there. Raises :class:`InvalidRequestError` (parameter ``prices``) naming what is allowed."""
    name = _provider_name(provider)
    canonical = canonical_model(model, parameter="prices")
    rules = RULES[name][canonical]
    where = f"{canonical} on {name}"
    res = resolution.strip().lower() if isinstance(resolution, str) else resolution
    if res not in rules.resolutions:
        raise InvalidRequestError("prices", resolution, f"a resolution {where} takes: {', '.join(rules.resolutions)}")
    seconds = duration
    if isinstance(duration, str) and duration.strip().removesuffix("s").strip().isdigit():
        seconds = int(duration.strip().removesuffix("s"))
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds not in rules.durations:
        allowed = ", ".join(map(str, rules.durations))
        raise InvalidRequestError("prices", duration, f"a duration in seconds {where} takes: {allowed}")
    return name, canonical, str(res), seconds


def _price_value(key: PriceKey, value: object) -> float:
    if not is_usd(value):
        provider, model, resolution, duration = key
        raise InvalidRequestError(
            "prices", value, f"a price in US dollars >= 0 (for {model} {resolution} {duration} s on {provider})"
        )
    return float(value)


class PriceTable:
    """Prices of one video per provider, model, resolution and duration. Immutable.

    Usage::

        prices = PriceTable.from_dict({"minimax": {"MiniMax-Hailuo-02": {"768p": {6: 0.25, 10: 0.50}}}})
        prices.get("minimax", "MiniMax-Hailuo-02", "768p", 6)   # Price(usd=0.25, source='your price table')
        HailuoClient("minimax", prices=prices)                   # or the dict itself

    Names are checked and normalised (provider and model in any case, ``768P`` or ``768p``, durations as numbers
    or strings such as ``"6"``); a combination the model does not take on that provider, or a price that is not a
    number >= 0, raises :class:`InvalidRequestError`. A combination the table does not name has no price: it is
    never guessed.
    """

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[PriceKey, Price] | None = None) -> None:
        table: dict[PriceKey, Price] = {}
        for (provider, model, resolution, duration), price in (prices or {}).items():
            key = _price_key(provider, model, resolution, duration)
            table[key] = msgspec.structs.replace(price, usd=_price_value(key, price.usd))
        self._prices = table

    @classmethod
    def from_dict(
        cls,
        data: PriceTableData,
        *,
        source: str = USER_SOURCE,
        as_of: str | None = None,
    ) -> PriceTable:
        """A table from ``{provider: {model: {resolution: {duration: usd}}}}`` (the shape of a JSON file too),
        every price recorded with ``source`` and ``as_of``."""
        if not isinstance(data, Mapping):
            raise InvalidRequestError("prices", data, "a mapping {provider: {model: {resolution: {duration: usd}}}}")
        prices: dict[PriceKey, Price] = {}
        for provider, models in data.items():
            _provider_name(provider)
            for model, resolutions in _mapping(models, "{model: {resolution: {duration: usd}}}").items():
                canonical_model(model, parameter="prices")
                for resolution, durations in _mapping(resolutions, "{resolution: {duration: usd}}").items():
                    for duration, usd in _mapping(durations, "{duration: usd}").items():
                        key = _price_key(provider, model, resolution, duration)
                        prices[key] = Price(usd=_price_value(key, usd), source=source, as_of=as_of)
        return cls(prices)

    def get(self, provider: str, model: str, resolution: str, duration: int) -> Price | None:
        """The price of one video, or ``None`` when the table does not name it."""
        return self._prices.get((provider, model, resolution, duration))

    def price_of(self, provider: Provider, request: GenerationRequest) -> tuple[int, str, Price | None]:
        """``(duration, resolution, price)`` of ``request`` on ``provider``: the duration and resolution it will
        really get (the provider's defaults where it gives none) and their price, ``None`` when unknown."""
        duration, resolution = provider.rules(request.model).effective(request)
        return duration, resolution, self.get(provider.name, request.model, resolution, duration)

    def to_dict(self) -> dict[str, dict[str, dict[str, dict[int, float]]]]:
        """The table as ``{provider: {model: {resolution: {duration: usd}}}}`` (sources left out)."""
        result: dict[str, dict[str, dict[str, dict[int, float]]]] = {}
        for (provider, model, resolution, duration), price in sorted(self._prices.items()):
            result.setdefault(provider, {}).setdefault(model, {}).setdefault(resolution, {})[duration] = price.usd
        return result

    def items(self) -> Iterator[tuple[PriceKey, Price]]:
        """Every ``(key, price)``."""
        return iter(self._prices.items())

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, key: object) -> bool:
        return key in self._prices

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceTable) and self._prices == other._prices

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} prices for {', '.join(sorted({k[0] for k in self._prices})) or '-'})"


PriceTableInput: TypeAlias = PriceTable | PriceTableData
"""What ``prices=`` takes: a :class:`PriceTable`, or ``{provider: {model: {resolution: {duration: usd}}}}``."""


def _mapping(value: object, shape: str) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise InvalidRequestError("prices", value, f"a mapping {shape}")
    return value


def as_price_table(prices: PriceTableInput | None) -> PriceTable:
    """``prices=`` as a table: :data:`DEFAULT_PRICES` for ``None``, a table as it is, a mapping through
    :meth:`PriceTable.from_dict`."""
    if prices is None:
        return DEFAULT_PRICES
    if isinstance(prices, PriceTable):
        return prices
    return PriceTable.from_dict(prices)


# MiniMax's pay-as-you-go video prices (docs/providers.md, "Prices"). apimart and toapis publish no per-video price
# the library could use: their videos have no default price (apimart reports each finished task's charge instead).
_MINIMAX_SOURCE = "MiniMax pay-as-you-go video prices, platform.minimax.io/docs/guides/pricing-paygo"
_MINIMAX_AS_OF = "2026-01"

DEFAULT_PRICES = PriceTable.from_dict(
    {
        "minimax": {
            "MiniMax-Hailuo-02": {"512p": {6: 0.10, 10: 0.15}, "768p": {6: 0.28, 10: 0.56}, "1080p": {6: 0.49}},
            "MiniMax-Hailuo-2.3": {"768p": {6: 0.28, 10: 0.56}, "1080p": {6: 0.49}},
            "MiniMax-Hailuo-2.3-Fast": {"768p": {6: 0.19, 10: 0.32}, "1080p": {6: 0.33}},
        }
    },
    source=_MINIMAX_SOURCE,
    as_of=_MINIMAX_AS_OF,
)
"""The prices the library knows, each with its source and date: MiniMax's published ones; none for apimart and
toapis (unknown stays unknown)."""


# -- estimates ------------------------------------------------------------------------------------------------


class ItemEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """What one item will cost, for the duration and resolution it will really get."""

    index: int
    """Its position in the items estimated."""
    model: str
    resolution: str
    """The resolution it will get (the provider's default when the request gives none)."""
    duration: int
    """The duration it will get, in seconds (the provider's default when the request gives none)."""
    usd: float | None
    """Its price in US dollars; ``None`` when unknown."""
    source: str | None = None
    """Where the price comes from."""
    as_of: str | None = None
    """When the price was read."""


class EstimateLine(msgspec.Struct, frozen=True, kw_only=True):
    """The items of one model, resolution and duration, counted together."""

    model: str
    resolution: str
    duration: int
    count: int
    unit_usd: float | None
    """One video's price; ``None`` when unknown."""
    subtotal_usd: float | None
    """``count`` videos; ``None`` when unknown."""


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of items will cost on one provider (:meth:`HailuoClient.estimate`, :func:`estimate`).

    ``total`` adds up the items with a known price; ``unpriced`` lists the others, which ``total`` leaves out
    (``complete`` says whether there are none)."""

    provider: str
    items: tuple[ItemEstimate, ...]
    """Every item, in input order."""
    total: float
    """US dollars for the items with a known price."""
    unpriced: tuple[ItemEstimate, ...]
    """The items whose price is unknown."""

    @property
    def complete(self) -> bool:
        """Whether every item has a price (then ``total`` is the whole estimate)."""
        return not self.unpriced

    def lines(self) -> list[EstimateLine]:
        """The items grouped per model, resolution and duration, in order of first appearance."""
        groups: dict[tuple[str, str, int], list[ItemEstimate]] = {}
        for item in self.items:
            groups.setdefault((item.model, item.resolution, item.duration), []).append(item)
        lines = []
        for (model, resolution, duration), members in groups.items():
            unit = members[0].usd
            subtotal = None if unit is None else to_usd(to_micros(unit) * len(members))
            lines.append(
                EstimateLine(
                    model=model,
                    resolution=resolution,
                    duration=duration,
                    count=len(members),
                    unit_usd=unit,
                    subtotal_usd=subtotal,
                )
            )
        return lines


def estimate(
    items: Iterable[str | GenerationRequest],
    *,
    provider: str | Provider = "apimart",
    prices: PriceTableInput | None = None,
) -> Estimate:
    """What ``items`` (prompts or requests) would cost on ``provider``, sending nothing (no API key needed).

    Usage::

        from hailuo_async import GenerationRequest, estimate

        quote = estimate(["A cat", GenerationRequest("A dog", duration=10)], provider="minimax")
        quote.total, quote.unpriced      # 0.84, ()

    Each item is priced at the duration and resolution it will really get: a request without them gets the
    provider's defaults for its model (apimart's Hailuo-02: 5 s, elsewhere 6 s; 768p). ``prices`` replaces the
    default table (:data:`DEFAULT_PRICES`); an item the table does not price is listed in ``unpriced``, never
    guessed. The items are not validated against the provider's rules: a combination it refuses has no price."""
    codec = get_provider(provider) if isinstance(provider, str) else provider
    table = as_price_table(prices)
    priced: list[ItemEstimate] = []
    total = 0
    for index, item in enumerate(items):
        request = item if isinstance(item, GenerationRequest) else GenerationRequest(item)
        duration, resolution, price = table.price_of(codec, request)
        priced.append(
            ItemEstimate(
                index=index,
                model=request.model,
                resolution=resolution,
                duration=duration,
                usd=None if price is None else price.usd,
                source=None if price is None else price.source,
                as_of=None if price is None else price.as_of,
            )
        )
        total += 0 if price is None else to_micros(price.usd)
    return Estimate(
        provider=codec.name,
        items=tuple(priced),
        total=to_usd(total),
        unpriced=tuple(i for i in priced if i.usd is None),
    )


def describe_unpriced(provider: str, unpriced: Sequence[ItemEstimate], *, limit: int = 5) -> str:
    """``#2 (MiniMax-Hailuo-02 768p 5 s), #4 (...) and 3 more``: the items a table cannot price."""
    shown = [f"#{i.index} ({i.model} {i.resolution} {i.duration} s)" for i in unpriced[:limit]]
    more = len(unpriced) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "") + f" on {provider}"
