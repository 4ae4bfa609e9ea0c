"""One slot's order book and its clearing result, with the JSON formats of `sgrid market clear`.

Book (integers only; docs/market.md §2):

    {"slot": {"start": 1767225600, "end": 1767229200},
     "offers": [{"id": "o1", "node": "pv-1", "wh": 1500, "price_msat_per_kwh": 120000,
                 "time": 1767220000}],
     "bids":   [{"id": "b1", "node": "home-1", "wh": 800, "price_msat_per_kwh": 150000,
                 "time": 1767220100}]}

An order may also carry `"reliability_permille"` (0..1000, default 0), which orders equal-price
orders (docs/market.md §4). Order ids are unique across the whole book. `parse_book` raises
BookError naming the first bad field (`offers[2].wh`), never anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.market.errors import BookError
from gateway.market.units import MAX_PRICE, MAX_WH

MAX_ID_LEN = 64
MAX_TIME = 2**40
ORDER_KEYS = ("id", "node", "wh", "price_msat_per_kwh", "time")
OPTIONAL_ORDER_KEYS = ("reliability_permille",)
_REQUIRED = frozenset(ORDER_KEYS)
_ALLOWED = frozenset(ORDER_KEYS + OPTIONAL_ORDER_KEYS)


class Order(NamedTuple):
    """A sell offer or a buy bid. For an offer the price is its reserve (lowest acceptable).

    Immutable (a NamedTuple: cheap to create by the hundred thousand)."""

    id: str
    node: str
    wh: int
    price_msat_per_kwh: int
    time: int
    reliability_permille: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "node": self.node,
            "wh": self.wh,
            "price_msat_per_kwh": self.price_msat_per_kwh,
            "time": self.time,
        }
        if self.reliability_permille:
            out["reliability_permille"] = self.reliability_permille
        return out


@dataclass(frozen=True)
class Book:
    start: int
    end: int
    offers: tuple[Order, ...]
    bids: tuple[Order, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "slot": {"start": self.start, "end": self.end},
            "offers": [o.to_json() for o in self.offers],
            "bids": [b.to_json() for b in self.bids],
        }


class Trade(NamedTuple):
    """A match: the buyer pays `amount_msat`, the seller receives `seller_amount_msat`.

    The two differ only under trade reduction (the difference is the market's surplus)."""

    bid: str
    offer: str
    buyer: str
    seller: str
    wh: int
    price_msat_per_kwh: int
    amount_msat: int
    seller_price_msat_per_kwh: int
    seller_amount_msat: int

    def to_json(self) -> dict[str, Any]:
        return {
            "bid": self.bid,
            "offer": self.offer,
            "wh": self.wh,
            "price_msat_per_kwh": self.price_msat_per_kwh,
            "amount_msat": self.amount_msat,
            "buyer": self.buyer,
            "seller": self.seller,
            "seller_price_msat_per_kwh": self.seller_price_msat_per_kwh,
            "seller_amount_msat": self.seller_amount_msat,
        }


@dataclass(frozen=True)
class Clearing:
    mechanism: str
    trades: tuple[Trade, ...]
    clearing_price_msat_per_kwh: int | None
    unmatched_bids: tuple[tuple[str, int], ...] = field(default=())  # (id, Wh left)
    unmatched_offers: tuple[tuple[str, int], ...] = field(default=())

    @property
    def surplus_msat(self) -> int:
        return sum(t.amount_msat - t.seller_amount_msat for t in self.trades)

    def to_json(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism,
            "trades": [t.to_json() for t in self.trades],
            "clearing_price_msat_per_kwh": self.clearing_price_msat_per_kwh,
            "unmatched_bids": [{"id": i, "wh": wh} for i, wh in self.unmatched_bids],
            "unmatched_offers": [{"id": i, "wh": wh} for i, wh in self.unmatched_offers],
            "surplus_msat": self.surplus_msat,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=True)


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if type(value) is not int:
        raise BookError(where, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise BookError(where, f"must be in {lo}..{hi}, got {value}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LEN or not value.isprintable():
        raise BookError(where, f"must be a printable string of 1..{MAX_ID_LEN} characters")
    return value


def parse_order(value: Any, where: str) -> Order:
    if not isinstance(value, dict):
        raise BookError(where, "must be an object")
    keys = value.keys()
    if not _REQUIRED <= keys:
        missing = next(k for k in ORDER_KEYS if k not in value)
        raise BookError(f"{where}.{missing}", "is missing")
    if len(keys) > len(ORDER_KEYS) and keys - _ALLOWED:
        raise BookError(f"{where}.{sorted(map(str, keys - _ALLOWED))[0]}", "is not a known field")
    return Order(
        id=_text(value["id"], f"{where}.id"),
        node=_text(value["node"], f"{where}.node"),
        wh=_int(value["wh"], f"{where}.wh", 1, MAX_WH),
        price_msat_per_kwh=_int(
            value["price_msat_per_kwh"], f"{where}.price_msat_per_kwh", 0, MAX_PRICE
        ),
        time=_int(value["time"], f"{where}.time", 0, MAX_TIME),
        reliability_permille=_int(
            value.get("reliability_permille", 0), f"{where}.reliability_permille", 0, 1000
        ),
    )


def parse_book(value: Any) -> Book:
    """Validate a decoded book; raises BookError naming the field."""
    if not isinstance(value, dict):
        raise BookError("book", "must be a JSON object")
    for key in ("slot", "offers", "bids"):
        if key not in value:
            raise BookError(key, "is missing")
    extra = sorted(set(value) - {"slot", "offers", "bids"})
    if extra:
        raise BookError(extra[0], "is not a known field")
    slot = value["slot"]
    if not isinstance(slot, dict):
        raise BookError("slot", "must be an object with start and end")
    for key in ("start", "end"):
        if key not in slot:
            raise BookError(f"slot.{key}", "is missing")
    start = _int(slot["start"], "slot.start", 0, MAX_TIME)
    end = _int(slot["end"], "slot.end", 0, MAX_TIME)
    if end <= start:
        raise BookError("slot.end", "must be after slot.start")
    books: dict[str, tuple[Order, ...]] = {}
    seen: set[str] = set()
    for side in ("offers", "bids"):
        orders = value[side]
        if not isinstance(orders, list):
            raise BookError(side, "must be a list")
        parsed = []
        for i, raw in enumerate(orders):
            order = parse_order(raw, f"{side}[{i}]")
            if order.id in seen:
                raise BookError(f"{side}[{i}].id", f"duplicate order id {order.id!r}")
            seen.add(order.id)
            parsed.append(order)
        books[side] = tuple(parsed)
    return Book(start, end, books["offers"], books["bids"])


def loads_book(text: str | bytes) -> Book:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BookError("book", f"is not JSON: {exc}") from exc
    return parse_book(value)
