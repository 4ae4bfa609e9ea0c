"""A node's unsold surplus in a settlement period: what the POD is asked to buy (docs/gateway.md).

Pure: the meter's records, the node's sales and whether each sale is paid come in as arguments.

* `periods_due`: the periods after the meter's cursor that are over and that the meter's newest
  stored reading has reached (the store keeps a contiguous chain, so every reading of such a
  period is stored): each is examined once;
* `sold_wh`: the energy of the node's paid receipts in the period, a receipt whose window spans
  several periods counted in proportion to its overlap, rounded up;
* `surplus_wh`: the export between the two records that bound the period (the first ending at
  or after its start, the last at or before its end) less what was sold, never below zero.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.grid.surplus_book import Sale
from gateway.ln.codec import surplus_claim as sc
from sgcore import reading as rc

MAX_PERIODS_PER_ROUND = 96  # a day of 15-minute periods; the rest follow in the next rounds


def periods_due(
    cursor_end: int, head_end: int, now: float, period_s: int, oldest: float,
    limit: int = MAX_PERIODS_PER_ROUND,
) -> list[tuple[int, int]]:  # fmt: skip
    """Whole periods [s, s + period_s) from `cursor_end` on (aligned), ending by `head_end` and
    by `now`; none that ended before `oldest` (too old for the POD)."""
    s = -(-max(cursor_end, int(oldest)) // period_s) * period_s
    out: list[tuple[int, int]] = []
    while s + period_s <= min(head_end, now) and len(out) < limit:
        out.append((s, s + period_s))
        s += period_s
    return out


def sold_wh(sales: list[Sale], paid: Callable[[bytes], bool], start: int, end: int) -> int:
    total = 0
    for s in sales:
        overlap = min(end, s.end) - max(start, s.start)
        if overlap <= 0 or not paid(s.payment_hash):
            continue
        total += -(-s.wh * overlap // (s.end - s.start))  # rounded up
    return total


def surplus_wh(first: rc.Reading, last: rc.Reading, sold: int) -> tuple[int, int]:
    """(exported, unsold) Wh between the two bounding records; unsold is capped at sc.MAX_WH."""
    exported = max(0, last.export_wh - first.export_wh)
    return exported, min(max(0, exported - sold), sc.MAX_WH)
