"""Integer units and the market's one rounding rule.

Energy is in whole Wh, money in whole msat, prices in msat per kWh. Everything is `int`.

**Rounding rule** (the only one): an amount is `floor(wh * price_msat_per_kwh / 1000)`, i.e.
`wh * price // 1000`. Both sides of a trade use the same formula, so whatever one pays the other
receives; where a mechanism has two prices (trade reduction), each side is floored on its own
price and the documented surplus is the difference. Shares of a sum (coalition revenue,
loss allocation) use `split`: floor each share, then give the leftover units one each to the
largest remainders, ties to the earliest key in the given order — the parts always add up.
"""

from __future__ import annotations

from collections.abc import Sequence

WH_PER_KWH = 1000
MAX_WH = 10**9  # 1 GWh in one order
MAX_PRICE = 10**9  # msat per kWh (1e6 sat/kWh)


def amount_msat(wh: int, price_msat_per_kwh: int) -> int:
    """What `wh` Wh cost at `price_msat_per_kwh`, floored to a whole msat."""
    return wh * price_msat_per_kwh // WH_PER_KWH


def split(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to non-negative integer `weights` (largest remainder).

    The parts sum to `total` exactly; with all weights 0 everything goes to the first part.
    Leftover units go to the largest remainders, equal remainders to the lower index.
    """
    if not weights:
        if total:
            raise ValueError("cannot split a non-zero total over no parts")
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [total] + [0] * (len(weights) - 1)
    parts = [total * w // weight_sum for w in weights]
    rest = total - sum(parts)
    if rest:
        remainders = sorted(
            range(len(weights)), key=lambda i: (-(total * weights[i] % weight_sum), i)
        )
        for i in remainders[:rest]:
            parts[i] += 1
    return parts
