"""What a client spends: each task's cost, held against the spending caps from right before its POST to its end.

Data flow: a submit (:mod:`._submit`) -> :meth:`Ledger.reserve` looks its estimated cost up in the price table
(:mod:`._prices`) and holds it against the caps (:class:`SpendCap`: the client's ``max_spend``, a batch's) right
before the POST (:class:`Reservation`) -> the cost is kept for every task created (:meth:`Reservation.commit`) and
freed when none was (:meth:`Reservation.release`) -> :meth:`Ledger.settle` replaces it by the provider's reported
charge when the task finishes, or by zero when a refunded failure costs nothing -> :meth:`Ledger.spent` feeds the
client's statistics. Amounts are kept in whole micro-dollars, so that sums and caps are exact. No I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from ._exceptions import BudgetExceededError, GenerationFailedError, HailuoError, InvalidRequestError
from ._models import Generation, GenerationRequest
from ._prices import Estimate, PriceTable, describe_unpriced, estimate, is_usd, to_micros, to_usd
from .providers import Provider

__all__ = ["Ledger", "Reservation", "SpendCap"]


class SpendCap:
    """One spending cap (``max_spend``) and what is held against it: the costs of the tasks committed under it
    and of the submits on their way."""

    __slots__ = ("held", "limit", "scope")

    def __init__(self, usd: float, *, scope: str = "max_spend") -> None:
        if not is_usd(usd):
            raise InvalidRequestError(scope, usd, "a number of US dollars >= 0, or None for no cap")
        self.limit = to_micros(usd)
        self.scope = scope
        self.held = 0

    @property
    def usd(self) -> float:
        """The cap in US dollars."""
        return to_usd(self.limit)


@dataclasses.dataclass(eq=False)
class _Entry:
    """One task's cost: the estimate, the reported charge once known, and what is held against the caps."""

    estimate: int | None
    caps: tuple[SpendCap, ...]
    charged: int | None = None
    held: int = 0
    kept: tuple[int, int, int] = (0, 0, 0)  # its totals when the ledger started counting it as open

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
        self._pending = (0, 0, 0)  # the same of the tasks still open, as they were kept

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
                raise BudgetExceededError(
                    cap=cap.usd, committed=to_usd(cap.held), needed=to_usd(amount), scope=cap.scope
                )
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
                outcome = msgspec.structs.replace(outcome, estimated_cost=to_usd(entry.estimate))
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
        previous = self._open.get(key)
        if previous is not None:
            self._pending = _add(self._pending, previous.kept, sign=-1)
        self._open[key] = entry
        entry.kept = entry.totals()
        self._pending = _add(self._pending, entry.kept)

    def _fold(self, key: str, entry: _Entry) -> None:
        """Move a task from the open ones to the settled ones, with what it counts now."""
        del self._open[key]
        self._pending = _add(self._pending, entry.kept, sign=-1)
        self._settled = _add(self._settled, entry.totals())

    def spent(self) -> tuple[float, float, int]:
        """``(spent, estimated part, unpriced tasks)`` over every task committed (see
        :class:`~hailuo_async.ClientStatistics`); kept up to date as tasks come and end, so asking costs nothing."""
        spent, estimated, unpriced = _add(self._settled, self._pending)
        return to_usd(spent), to_usd(estimated), unpriced


def _add(a: tuple[int, int, int], b: tuple[int, int, int], *, sign: int = 1) -> tuple[int, int, int]:
    return a[0] + sign * b[0], a[1] + sign * b[1], a[2] + sign * b[2]
