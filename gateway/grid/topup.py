"""A prepaid consumer's last-resort purchase: before each window starts, what its forecast needs
and no producer's receipt covered is bought from the POD (seed 000: the POD is the last-resort
source). Pure apart from the clock value passed in.

Each round (every `market.plan_every_s`), for the next window of `market.settle_period_s`: once
that window starts within `LEAD_S` (the producers' gate closure has passed: no offer for it can
come any more), the node compares the energy it bought for the window (every credit row of that
window that is not failed or rejected) with its forecast need for the window (`need_wh`:
`market.forecast_file`, else `market.need_wh_per_hour` x the window's length), and asks the POD
for the difference. The request id is derived from the window and the missing Wh, so a restart asks
for the same receipt again, and while a POD purchase for the window is open no second is made.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from gateway.config_grid import MarketConfig
from gateway.grid.credit_book import OPEN, CreditBook
from gateway.ln.codec import energy_request as er

LEAD_S = 300  # buy from the POD this close to the window: the market's default gate closure


def topup_request(
    book: CreditBook,
    market: MarketConfig,
    meter_id: bytes,
    node_id: bytes,
    now: float,
    need_wh: Callable[[int, int], int] | None = None,
) -> er.EnergyRequest | None:
    """The last-resort request this node should make now, or None."""
    window = market.settle_period_s
    if not market.forward_to:
        return None
    start = (int(now) // window + 1) * window
    if start - now > LEAD_S:
        return None
    need = need_wh(start, start + window) if need_wh else market.need_wh_per_hour * window // 3600
    if need <= 0:
        return None
    rows = [r for r in book.all() if r.meter_id == meter_id and r.window_start == start]
    if any(r.issuer_node == market.forward_to and r.status in OPEN for r in rows):
        return None  # a purchase from the POD for this window is still on its way
    bought = sum(r.wh for r in rows if r.status not in ("failed", "rejected"))
    missing = min(need - bought, er.MAX_WH)
    if missing <= 0:
        return None
    rid = hashlib.sha256(
        b"sg-topup" + node_id + meter_id + struct.pack(">II", start, missing)
    ).digest()
    return er.EnergyRequest(rid, er.KIND_PURCHASE, start, start + window, missing)
