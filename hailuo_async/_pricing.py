"""Money before and while it is spent: price tables, estimates, and the spending cap.

Data flow: a request -> its model's rules on the provider (:mod:`hailuo_async.providers`, ``ModelRules``) give the
duration and resolution it will really get -> a :class:`PriceTable` gives their price -> :func:`estimate` adds the
items up into an :class:`Estimate`. While a client runs, its :class:`Ledger` holds each submit's estimated cost
against the caps (:class:`SpendCap`) right before the POST (:class:`Reservation`), keeps it for every task created,
replaces it by the provider's reported charge when the task finishes, and drops it when a refunded failure costs
nothing. Amounts are kept in whole micro-dollars, so that sums and caps are exact. No I/O.

Prices come from published price lists only (docs/providers.md, "Prices"); a price that is not known stays unknown.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeAlias

import msgspec

from ._exceptions import (
    BudgetExceededError,
    GenerationFailedError,
    HailuoError,
    InvalidRequestError,
)
from ._models import Generation, GenerationRequest, canonical_model
from .providers import RULES, Provider, get_provider

__all__ = [
    "DEFAULT_PRICES",
    "Estimate",
    "EstimateLine",
    "ItemEstimate",
    "Ledger",
    "Price",
    "PriceTable",
    "PriceTableData",
    "PriceTableInput",
    "Reservation",
    "SpendCap",
    "estimate",
    "to_micros",
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


def _usd(micros: int) -> float:
    return micros / _MICROS


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
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
            subtotal = None if unit is None else _usd(to_micros(unit) * len(members))
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
        total=_usd(total),
        unpriced=tuple(i for i in priced if i.usd is None),
    )


def describe_unpriced(provider: str, unpriced: Sequence[ItemEstimate], *, limit: int = 5) -> str:
    """``#2 (MiniMax-Hailuo-02 768p 5 s), #4 (...) and 3 more``: the items a table cannot price."""
    shown = [f"#{i.index} ({i.model} {i.resolution} {i.duration} s)" for i in unpriced[:limit]]
    more = len(unpriced) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "") + f" on {provider}"


# -- spending: caps, reservations, the ledger ------------------------------------------------------------------


class SpendCap:
    """One spending cap (``max_spend``) and what is held against it: the costs of the tasks committed under it
    and of the submits on their way."""

    __slots__ = ("held", "limit", "scope")

    def __init__(self, usd: float, *, scope: str = "max_spend") -> None:
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not (math.isfinite(usd) and usd >= 0):
            raise InvalidRequestError(scope, usd, "a number of US dollars >= 0, or None for no cap")
        self.limit = to_micros(usd)
        self.scope = scope
        self.held = 0

    @property
    def usd(self) -> float:
        """The cap in US dollars."""
        return _usd(self.limit)


@dataclasses.dataclass(eq=False)
class _Entry:
    """One task's cost: the estimate, the reported charge once known, and what is held against the caps."""

    estimate: int | None
    caps: tuple[SpendCap, ...]
    charged: int | None = None
    held: int = 0

    def hold(self, amount: int) -> None:
        """Hold ``amount`` against the caps instead of what was held so far."""
        for cap in self.caps:
            cap.held += amount - self.held
        self.held = amount

    def totals(self) -> tuple[int, int, int]:
        """``(spent, estimated part, unpriced)`` this task adds to a client's spending."""
        if self.charged is not None:
            return self.charged, 0, 0
        if self.estimate is not None:
            return self.estimate, self.estimate, 0
        return 0, 0, 1


class Reservation:
    """One submit's estimated cost, held against every cap from right before its POST.

    :meth:`commit` once a task exists (or may exist: the cost stays held); :meth:`release` when none was created."""

    __slots__ = ("_entry", "_ledger", "_open")

    def __init__(self, ledger: Ledger, entry: _Entry) -> None:
        self._ledger = ledger
        self._entry = entry
        self._open = True

    def commit(self, key: str) -> None:
        """A task exists (``key``: its task id), or may (``key``: the submit's own key): keep its cost."""
        if self._open:
            self._open = False
            self._ledger.keep(key, self._entry)

    def release(self) -> None:
        """No task was created: free what was held."""
        if self._open:
            self._open = False
            self._entry.hold(0)


class Ledger:
    """What one client's tasks cost: held against the caps before each POST, then each task's estimate, replaced
    by the provider's reported charge when it finishes (zero for a failure the provider refunds).

    Every step runs without awaiting, so concurrent submits cannot pass a cap together: each reservation sees
    every other one made before it. A task's entry lives while its cost may still change (running, or timed out
    and maybe waited on again); a settled one is folded into running totals, so a long run keeps no per-item
    state."""

    def __init__(self, provider: Provider, prices: PriceTable, cap: SpendCap | None = None) -> None:
        self.provider = provider
        self.prices = prices
        self.cap = cap
        self._open: dict[str, _Entry] = {}
        self._settled = (0, 0, 0)  # spent, estimated, unpriced of the settled tasks

    def estimate(self, items: Iterable[str | GenerationRequest]) -> Estimate:
        """:func:`estimate` with this ledger's provider and prices."""
        return estimate(items, provider=self.provider, prices=self.prices)

    def caps(self, batch: SpendCap | None = None) -> tuple[SpendCap, ...]:
        """The caps a submit must fit: the client's and ``batch``'s, where set."""
        return tuple(cap for cap in (self.cap, batch) if cap is not None)

    def require_prices(self, requests: Mapping[int, GenerationRequest], caps: Sequence[SpendCap]) -> None:
        """Refuse to start under a cap when an item has no price: :class:`InvalidRequestError` naming the cap and
        the items (``requests`` maps each item's number in its batch to its request)."""
        if not caps:
            return
        numbers = list(requests)
        unpriced = [
            msgspec.structs.replace(item, index=numbers[item.index])
            for item in self.estimate(requests.values()).unpriced
        ]
        if unpriced:
            cap = min(caps, key=lambda c: c.limit)
            raise InvalidRequestError(
                cap.scope,
                cap.usd,
                f"a cap needs every item's price; none is known for item(s) "
                f"{describe_unpriced(self.provider.name, unpriced)}: give them with prices= (or drop the cap)",
                provider=self.provider.name,
            )

    def check(self, request: GenerationRequest, caps: Sequence[SpendCap]) -> int | None:
        """``request``'s estimated cost in micro-dollars (``None``: unknown), once it is known to fit every cap
        now. Raises :class:`BudgetExceededError` when it would pass one, :class:`InvalidRequestError` when a cap
        is set and the request has no price. Holds nothing: only :meth:`reserve` does."""
        _, _, price = self.prices.price_of(self.provider, request)
        amount = None if price is None else to_micros(price.usd)
        if amount is None and caps:
            self.require_prices({0: request}, caps)
        for cap in caps:
            if amount is not None and cap.held + amount > cap.limit:
                raise BudgetExceededError(cap=cap.usd, committed=_usd(cap.held), needed=_usd(amount), scope=cap.scope)
        return amount

    def reserve(self, request: GenerationRequest, caps: Sequence[SpendCap]) -> Reservation:
        """Hold ``request``'s estimated cost against ``caps`` right before its POST: :meth:`check`, then hold,
        with nothing awaited in between. Raises as :meth:`check` does (nothing is held then)."""
        amount = self.check(request, caps)
        entry = _Entry(estimate=amount, caps=tuple(caps))
        entry.hold(amount or 0)
        return Reservation(self, entry)

    def settle(self, outcome: Generation | HailuoError) -> Generation | HailuoError:
        """Record a task's end and return ``outcome``, a :class:`Generation` with its ``estimated_cost`` set.

        A reported ``cost`` replaces the estimate; a :class:`GenerationFailedError` costs nothing where the
        provider refunds failures; anything else (a timeout, a task whose end is unknown) keeps the estimate."""
        task_id = getattr(outcome, "task_id", None)
        entry = self._open.get(task_id) if isinstance(task_id, str) else None
        if entry is None:
            return outcome
        if isinstance(outcome, Generation):
            if outcome.cost is not None:
                entry.charged = to_micros(outcome.cost)
                entry.hold(entry.charged)
            if outcome.estimated_cost is None and entry.estimate is not None:
                outcome = msgspec.structs.replace(outcome, estimated_cost=_usd(entry.estimate))
        elif isinstance(outcome, GenerationFailedError):
            if self.provider.refunds_failed:
                entry.charged = 0
                entry.hold(0)
        else:
            return outcome  # a timeout or an unknown end: the task may still finish and cost; keep it open
        self._fold(str(task_id), entry)
        return outcome

    def keep(self, key: str, entry: _Entry) -> None:
        """Keep ``entry`` as the cost of the task ``key`` names (its task id, or the submit's own key when a task
        may exist without one), until the task ends (:meth:`settle`)."""
        self._open[key] = entry

    def _fold(self, key: str, entry: _Entry) -> None:
        del self._open[key]
        self._settled = _add(self._settled, entry.totals())

    def spent(self) -> tuple[float, float, int]:
        """``(spent, estimated part, unpriced tasks)`` over every task committed (see
        :class:`~hailuo_async.ClientStatistics`)."""
        totals = self._settled
        for entry in self._open.values():
            totals = _add(totals, entry.totals())
        spent, estimated, unpriced = totals
        return _usd(spent), _usd(estimated), unpriced


def _add(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]
