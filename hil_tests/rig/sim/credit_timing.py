"""Where a prepaid meter's paid credit is at the end of a run, and how late it reached the meter.

Paid credit is never lost: each credit row the gateway's book holds (gateway/grid/credit_book.py)
is on the meter (its token accepted), or still on its way (paid, its token not issued or not
answered yet), or failed (never paid). What the meter took and its load did not draw is its
balance, kept on the meter (`credit_left_wh`), not money gone.

A row's credit is late when its token was accepted after the window it was bought for had begun
(`updated_at`, the meter's answer on the gateway's clock, against `window_start`). Each meter
checks one token's signature at a time (seconds of real CPU), and in an accelerated run those
seconds are many virtual minutes: a high-power load (the 11 kW EV) can use up its balance before
the credit it bought for its window arrives, and what it wants meanwhile is unserved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ON_ITS_WAY = ("paid", "issued")  # paid, the token not yet on the meter (the book resends it)


def credit_figures(
    rows: Iterable[Mapping[str, Any]], took: set[int], drew_wh: int, t0: float, t1: float
) -> dict[str, int]:
    """The figures of one prepaid meter: `rows` its gateway's credit rows, `took` the ids of the
    tokens its console says it accepted, `drew_wh` what it metered, [t0, t1) the run's span."""
    on_meter, pending, late_wh, late_max = 0, 0, 0, 0.0
    for r in rows:
        status, wh = r["status"], int(r["wh"])
        taken = status == "accepted" or (status == "issued" and r["token_id"] in took)
        if not taken:
            if status in ON_ITS_WAY:
                pending += wh
            continue
        on_meter += wh
        start = float(r["window_start"])
        if status == "accepted" and t0 <= start < t1 and float(r["updated_at"]) > start:
            late_wh += wh
            late_max = max(late_max, float(r["updated_at"]) - start)
    return {
        "credit_left_wh": on_meter - drew_wh,
        "credit_pending_wh": pending,
        "credit_late_wh": late_wh,
        "credit_late_max_s": round(late_max),
    }
