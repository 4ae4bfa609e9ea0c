"""Settlement at delivery (seed 000, 002): paid receipts against metered energy, per period (pure).

For each node n and 15-minute period (docs/market.md §8):

    contracted_net_wh = sum(wh + loss_wh of receipts n sold) - sum(wh of receipts n bought)
    metered_net_wh    = export_wh - import_wh        (from n's signed readings)
    imbalance_wh      = metered_net_wh - contracted_net_wh
    imbalance_msat    = sign(imbalance_wh) * floor(|imbalance_wh| * imbalance_price / 1000)

A long node (imbalance_wh > 0: delivered more or drew less than it contracted) issues an
imbalance receipt to the POD and is paid `imbalance_msat`; a short node is issued one by the POD
and pays it. The POD's own imbalance line is the opposite of all others together. The seller of
a trade carries its allocated line losses (it injects wh + loss_wh). The market surplus of trade
reduction goes to the operator. Every statement's

    net_msat = received_msat - paid_msat + imbalance_msat + surplus_msat

and the statements of a period sum to exactly 0: no money is created or lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.market.errors import SettlementError
from gateway.market.strategies import OfferedReceipt
from gateway.market.units import amount_msat, split


@dataclass(frozen=True, slots=True)
class Contract:
    """A paid receipt: `seller` injects `wh` (+ `loss_wh`) for `buyer` in the period."""

    seller: str
    buyer: str
    wh: int
    amount_msat: int  # what the buyer paid
    seller_amount_msat: int  # what the seller received (differs only under trade reduction)
    loss_wh: int = 0


@dataclass(frozen=True, slots=True)
class Metered:
    import_wh: int
    export_wh: int

    @property
    def net_wh(self) -> int:
        return self.export_wh - self.import_wh


@dataclass(frozen=True, slots=True)
class ImbalanceReceipt:
    issuer: str  # who is paid
    payer: str
    wh: int
    amount_msat: int


@dataclass(frozen=True)
class Statement:
    start: int
    end: int
    node: str
    receipts_sold: int
    sold_wh: int
    loss_wh: int
    received_msat: int
    receipts_bought: int
    bought_wh: int
    paid_msat: int
    metered_import_wh: int
    metered_export_wh: int
    contracted_net_wh: int
    imbalance_wh: int
    imbalance_price_msat_per_kwh: int
    imbalance_msat: int
    surplus_msat: int
    net_msat: int

    FIELDS = (
        "start",
        "end",
        "node",
        "receipts_sold",
        "sold_wh",
        "loss_wh",
        "received_msat",
        "receipts_bought",
        "bought_wh",
        "paid_msat",
        "metered_import_wh",
        "metered_export_wh",
        "contracted_net_wh",
        "imbalance_wh",
        "imbalance_price_msat_per_kwh",
        "imbalance_msat",
        "surplus_msat",
        "net_msat",
    )

    def to_json(self) -> dict[str, int | str]:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(frozen=True)
class PeriodSettlement:
    start: int
    end: int
    statements: tuple[Statement, ...]  # sorted by node id
    imbalance_receipts: tuple[ImbalanceReceipt, ...]

    @property
    def money_created_msat(self) -> int:
        return sum(s.net_msat for s in self.statements)


def settle_period(
    start: int,
    end: int,
    contracts: Iterable[Contract],
    metered: Mapping[str, Metered],
    imbalance_price_msat_per_kwh: int,
    pod: str,
    operator: str | None = None,
) -> PeriodSettlement:
    """Settle one period. Every node with a contract or a reading gets a statement; a node with
    a contract but no reading raises SettlementError (a missing reading is not zero energy)."""
    if type(imbalance_price_msat_per_kwh) is not int or imbalance_price_msat_per_kwh < 0:
        raise SettlementError("imbalance price must be a non-negative integer msat/kWh")
    operator = operator or pod
    acc: dict[str, list[int]] = {}  # node -> [n_sold, sold, loss, recv, n_bought, bought, paid]

    def row(node: str) -> list[int]:
        return acc.setdefault(node, [0] * 7)

    surplus = 0
    for c in contracts:
        if c.seller == c.buyer or c.wh <= 0 or c.seller_amount_msat > c.amount_msat:
            raise SettlementError(f"contract {c} is not a valid trade")
        s, b = row(c.seller), row(c.buyer)
        s[0] += 1
        s[1] += c.wh
        s[2] += c.loss_wh
        s[3] += c.seller_amount_msat
        b[4] += 1
        b[5] += c.wh
        b[6] += c.amount_msat
        surplus += c.amount_msat - c.seller_amount_msat
    for node in metered:
        row(node)
    row(pod)
    row(operator)
    missing = sorted(
        n for n in acc if n not in metered and n not in (pod, operator) and any(acc[n])
    )
    if missing:
        raise SettlementError(f"no metered energy for {', '.join(missing[:5])} in [{start}, {end})")
    receipts: list[ImbalanceReceipt] = []
    imbalances: dict[str, tuple[int, int]] = {}  # node -> (imbalance Wh, imbalance msat)
    for node in sorted(acc):
        if node == pod:
            continue  # the POD balances everyone: its line is the opposite of all others
        imbalance_wh = metered.get(node, Metered(0, 0)).net_wh - _contracted(acc[node])
        magnitude = amount_msat(abs(imbalance_wh), imbalance_price_msat_per_kwh)
        imbalances[node] = (imbalance_wh, magnitude if imbalance_wh >= 0 else -magnitude)
        if magnitude and imbalance_wh > 0:
            receipts.append(ImbalanceReceipt(node, pod, imbalance_wh, magnitude))
        elif magnitude:
            receipts.append(ImbalanceReceipt(pod, node, -imbalance_wh, magnitude))
    imbalances[pod] = (0, -sum(msat for _, msat in imbalances.values()))
    statements = []
    for node in sorted(acc):
        n_sold, sold, loss, recv, n_bought, bought, paid = acc[node]
        m = metered.get(node, Metered(0, 0))
        imbalance_wh, imbalance = imbalances[node]
        extra = surplus if node == operator else 0
        statements.append(
            Statement(
                start, end, node, n_sold, sold, loss, recv, n_bought, bought, paid,
                m.import_wh, m.export_wh, _contracted(acc[node]), imbalance_wh,
                imbalance_price_msat_per_kwh, imbalance, extra,
                recv - paid + imbalance + extra,
            )
        )  # fmt: skip
    return PeriodSettlement(start, end, tuple(statements), tuple(receipts))


def _contracted(row: list[int]) -> int:
    """Contracted net Wh of a node: sold + losses it carries - bought."""
    return row[1] + row[2] - row[5]


def contracts_in_period(
    paid: Iterable[tuple[str, OfferedReceipt]], start: int, end: int
) -> list[Contract]:
    """The part of each paid receipt (buyer, receipt) that falls in the period [start, end).

    A receipt longer than the period (an hourly receipt settled per 15 minutes) is cut on the grid
    of periods of this length aligned at `start`: a profile gives each period the Wh of the steps
    starting in it, a plain kWh receipt is split by seconds of overlap (`units.split`), and the
    amount is split in proportion to those Wh. Asked for every period of the grid, the parts add
    up to each receipt exactly."""
    length = end - start
    out = []
    for buyer, r in paid:
        if r.end <= start or r.start >= end:
            continue
        if r.start >= start and r.end <= end:
            out.append(Contract(r.issuer, buyer, r.wh, r.amount_msat, r.amount_msat))
            continue
        k0 = (r.start - start) // length
        k1 = -((start - r.end) // length)  # ceil
        bounds = [(start + k * length, start + (k + 1) * length) for k in range(k0, k1)]
        if r.profile_wh:
            step = (r.end - r.start) // len(r.profile_wh)
            wh_parts = [
                sum(wh for i, wh in enumerate(r.profile_wh) if a <= r.start + i * step < b)
                for a, b in bounds
            ]
        else:
            wh_parts = split(r.wh, [max(0, min(b, r.end) - max(a, r.start)) for a, b in bounds])
        mine = -k0
        msat = split(r.amount_msat, wh_parts)[mine]
        if wh_parts[mine]:
            out.append(Contract(r.issuer, buyer, wh_parts[mine], msat, msat))
    return out
