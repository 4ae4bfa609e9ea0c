"""Seed 003's hourly double auction as ledger transactions (pure; docs/ledger-api.md §2, docs/market.md §6).

    accept_offer_broadcast  operator opens a listing (state ACCEPT_OFFERS) for [start, end)
    pv_offer                a seller offers `wh` with an optional reserve (0 = none)
    buy_offer               a buyer bids for `wh` at `bid_msat_per_kwh`
    close_bidding           operator closes it (state AUCTION_CLOSED) and every replica clears
                            it with the same rule: gateway.market.mechanisms.seed003

The listing's order book is the ledger itself: an order's "offer time" is its arrival number in
the listing (block order, then position in the block), identical on every replica. Order ids are
the transaction ids; nodes are the participants' pubkeys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.ledger import canonical, keys
from gateway.ledger.errors import TxRejected
from gateway.market.book import Book, Order
from gateway.market.mechanisms.seed003 import Seed003
from gateway.market.units import MAX_PRICE, MAX_WH

ACCEPT_OFFERS = "ACCEPT_OFFERS"
AUCTION_CLOSED = "AUCTION_CLOSED"
MAX_LISTING_ORDERS = 100_000


def _time(v: Any) -> bool:
    return type(v) is int and 0 <= v < 2**40


def _wh(v: Any) -> bool:
    return type(v) is int and 1 <= v <= MAX_WH


def _price(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_PRICE


def _listing_id(v: Any) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= 64 and v.isprintable()


SCHEMAS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "accept_offer_broadcast": {"listing_id": _listing_id, "start": _time, "end": _time},
    "pv_offer": {
        "listing_id": _listing_id,
        "seller": keys.is_pubkey,
        "wh": _wh,
        "reserve_msat_per_kwh": _price,
    },
    "buy_offer": {
        "listing_id": _listing_id,
        "buyer": keys.is_pubkey,
        "wh": _wh,
        "bid_msat_per_kwh": _price,
    },
    "close_bidding": {"listing_id": _listing_id},
    "settlement_result": {
        "period_id": _listing_id,
        "statements_hash": lambda v: keys.is_hex(v, 32),
        "statement_count": lambda v: type(v) is int and 0 <= v < 2**32,
    },
}
OPERATOR_KINDS = ("accept_offer_broadcast", "close_bidding", "settlement_result")
SIGNER_FIELD = {"pv_offer": "seller", "buy_offer": "buyer"}


@dataclass
class Listing:
    """seed 003's kWhListing asset."""

    id: str
    start: int
    end: int
    opened_height: int
    status: str = ACCEPT_OFFERS
    offers: list[Order] = field(default_factory=list)
    bids: list[Order] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    trades_hash: str | None = None
    closed_height: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "listing_id": self.id,
            "start": self.start,
            "end": self.end,
            "state": self.status,
            "opened_height": self.opened_height,
            "closed_height": self.closed_height,
            "offers": [o.to_json() for o in self.offers],
            "bids": [b.to_json() for b in self.bids],
            "trades": self.trades,
            "trades_hash": self.trades_hash,
        }


def _open(state: Any, body: dict[str, Any], tx_id: str, height: int) -> Listing:
    listing = state.listings.get(body["listing_id"])
    if listing is None:
        raise TxRejected("unknown_listing", body["listing_id"], tx_id)
    if listing.status != ACCEPT_OFFERS:
        raise TxRejected("listing_closed", f"{listing.id} is {listing.status}", tx_id)
    if len(listing.offers) + len(listing.bids) >= MAX_LISTING_ORDERS:
        raise TxRejected("listing_full", f"{listing.id} holds {MAX_LISTING_ORDERS} orders", tx_id)
    return listing


def _accept_offer_broadcast(state: Any, body: dict[str, Any], tx_id: str, height: int) -> None:
    if body["listing_id"] in state.listings:
        raise TxRejected("duplicate_listing", body["listing_id"], tx_id)
    if body["end"] <= body["start"]:
        raise TxRejected("malformed", "a listing's end must be after its start", tx_id)
    state.listings[body["listing_id"]] = Listing(
        body["listing_id"], body["start"], body["end"], height
    )


def _arrival(listing: Listing) -> int:
    return len(listing.offers) + len(listing.bids)


def _pv_offer(state: Any, body: dict[str, Any], tx_id: str, height: int) -> None:
    listing = _open(state, body, tx_id, height)
    order = Order(
        tx_id, body["seller"], body["wh"], body["reserve_msat_per_kwh"], _arrival(listing)
    )
    listing.offers.append(order)


def _buy_offer(state: Any, body: dict[str, Any], tx_id: str, height: int) -> None:
    listing = _open(state, body, tx_id, height)
    order = Order(tx_id, body["buyer"], body["wh"], body["bid_msat_per_kwh"], _arrival(listing))
    listing.bids.append(order)


def clear(listing: Listing) -> list[dict[str, Any]]:
    """The CloseBidding smart contract: seed 003's rule over the listing's orders."""
    book = Book(listing.start, listing.end, tuple(listing.offers), tuple(listing.bids))
    return [t.to_json() for t in Seed003().clear(book).trades]


def _close_bidding(state: Any, body: dict[str, Any], tx_id: str, height: int) -> None:
    listing = state.listings.get(body["listing_id"])
    if listing is None:
        raise TxRejected("unknown_listing", body["listing_id"], tx_id)
    if listing.status != ACCEPT_OFFERS:
        raise TxRejected("listing_closed", f"{listing.id} is {listing.status}", tx_id)
    trades = clear(listing)
    listing.trades = trades
    listing.trades_hash = canonical.digest(trades).hex()
    listing.status, listing.closed_height = AUCTION_CLOSED, height


def _settlement_result(state: Any, body: dict[str, Any], tx_id: str, height: int) -> None:
    if body["period_id"] in state.settlements:
        raise TxRejected("duplicate_settlement", body["period_id"], tx_id)
    state.settlements[body["period_id"]] = {"height": height, "tx_id": tx_id, **body}


APPLY = {
    "accept_offer_broadcast": _accept_offer_broadcast,
    "pv_offer": _pv_offer,
    "buy_offer": _buy_offer,
    "close_bidding": _close_bidding,
    "settlement_result": _settlement_result,
}
