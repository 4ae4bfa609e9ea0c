"""Pluggable trading strategies (seed 000): small classes driven by a forecast.

Each strategy answers two questions for its node:
* `offers(window, forecast_wh, position)` -> [(wh, price_msat_per_kwh)] receipts to issue now;
* `accepts(receipt, forecast_wh, position)` -> pay this offered receipt (atomically, whole) or not
  (the agent then forwards it towards the POD).
and `bids(...)` the buy orders it would post in an auction round. All integers; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.market.forecast import Position


@dataclass(frozen=True, slots=True)
class OfferedReceipt:
    """A receipt someone offers us, decoded: issuer, window, Wh, total amount."""

    issuer: str
    start: int
    end: int
    wh: int
    amount_msat: int
    payment_hash: str  # hex
    profile_wh: tuple[int, ...] = ()  # Wh per step when the receipt carries a power profile

    @property
    def price_msat_per_kwh(self) -> int:
        """Price implied by the amount, floored (comparisons against a limit use it)."""
        return self.amount_msat * 1000 // self.wh if self.wh else 0


class Strategy(Protocol):
    role: str

    def offers(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]: ...

    def bids(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]: ...

    def accepts(self, receipt: OfferedReceipt, forecast_wh: int, position: Position) -> bool: ...


def _lots(wh: int, lot_wh: int) -> list[int]:
    """`wh` in receipts of `lot_wh` (the last one smaller): consumers pay whole receipts."""
    if wh <= 0:
        return []
    full, rest = divmod(wh, lot_wh)
    return [lot_wh] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class ProducerStrategy:
    """Sells the forecast surplus (+ up to `short_sell_wh` more) at `price_msat_per_kwh`."""

    price_msat_per_kwh: int
    lot_wh: int = 250
    short_sell_wh: int = 0
    role: str = "producer"

    def offers(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        free = max(0, forecast_wh) + self.short_sell_wh - position.sold_wh - position.offered_wh
        return [(wh, self.price_msat_per_kwh) for wh in _lots(free, self.lot_wh)]

    def bids(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        return []

    def accepts(self, receipt: OfferedReceipt, forecast_wh: int, position: Position) -> bool:
        return False


@dataclass(frozen=True)
class ConsumerStrategy:
    """Buys the forecast need at up to `max_price_msat_per_kwh`; never more than it needs."""

    max_price_msat_per_kwh: int
    role: str = "consumer"

    def _need(self, forecast_wh: int, position: Position) -> int:
        return max(0, -forecast_wh) - position.bought_wh

    def offers(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        return []

    def bids(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        need = self._need(forecast_wh, position)
        return [(need, self.max_price_msat_per_kwh)] if need > 0 else []

    def accepts(self, receipt: OfferedReceipt, forecast_wh: int, position: Position) -> bool:
        return (
            receipt.price_msat_per_kwh <= self.max_price_msat_per_kwh
            and receipt.wh <= self._need(forecast_wh, position)
        )


@dataclass(frozen=True)
class BatteryStrategy:
    """Buys below `buy_below` into free capacity, sells stored energy at `sell_at`.

    `forecast_wh` is the battery's planned net (ignored); the level comes from the node state the
    agent passes as `position` plus `stored_wh`. Per window at most `max_wh` either way.
    """

    capacity_wh: int
    max_wh: int
    buy_below_msat_per_kwh: int
    sell_at_msat_per_kwh: int
    stored_wh: int = 0
    lot_wh: int = 250
    role: str = "storage"

    def _level(self, position: Position) -> int:
        return self.stored_wh + position.bought_wh - position.sold_wh - position.offered_wh

    def offers(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        room = self.max_wh - position.sold_wh - position.offered_wh
        wh = min(self._level(position), room)
        return [(w, self.sell_at_msat_per_kwh) for w in _lots(wh, self.lot_wh)]

    def bids(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        free = min(self.capacity_wh - self._level(position), self.max_wh - position.bought_wh)
        return [(free, self.buy_below_msat_per_kwh)] if free > 0 else []

    def accepts(self, receipt: OfferedReceipt, forecast_wh: int, position: Position) -> bool:
        free = min(self.capacity_wh - self._level(position), self.max_wh - position.bought_wh)
        return receipt.price_msat_per_kwh <= self.buy_below_msat_per_kwh and receipt.wh <= free


@dataclass(frozen=True)
class PodStrategy:
    """The grid connection: the collector and last-resort source (seed 000).

    Pays any receipt forwarded to it that is priced at or below its feed-in price, and offers
    energy at its tariff in any amount (`offers` gives one receipt of `lot_wh` per call, the
    agent asks `receipt_for` for an exact amount)."""

    tariff_msat_per_kwh: int
    feed_in_msat_per_kwh: int
    lot_wh: int = 1000
    role: str = "pod"

    def offers(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        return [(self.lot_wh, self.tariff_msat_per_kwh)]

    def bids(self, forecast_wh: int, position: Position) -> list[tuple[int, int]]:
        return []

    def accepts(self, receipt: OfferedReceipt, forecast_wh: int, position: Position) -> bool:
        return receipt.price_msat_per_kwh <= self.feed_in_msat_per_kwh
