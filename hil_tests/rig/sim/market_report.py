"""What the market did in a run: receipts traded (intraday beyond the day-ahead forecast),
settlement statements per period, imbalances, price and volume per slot."""

from __future__ import annotations

from typing import Any

from hil_tests.rig.sim import collect
from hil_tests.rig.sim.driver import PERIOD_S
from hil_tests.rig.sim.forecasts import (
    BIAS,
    DAY_AHEAD_SIGMA,
    INTRADAY_SIGMA,
    REVISE_AHEAD_S,
    REVISE_EVERY_S,
    Forecaster,
)
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.market_config import IMBALANCE, PV_PRICE


def market(sg: SimGrid, fc: Forecaster, t0: float, t1: float) -> dict[str, Any]:
    """What was traded: receipts paid, and those bought or sold intraday, i.e. beyond what the
    day-ahead forecast of their window asked for (only a revised forecast trades them).

    Bought: each consumer's paid receipts of a window in payment order; those paid once the
    window's day-ahead need was covered are intraday. Sold: each PV plant's paid receipts of a
    window (its channel node's invoices: a receipt expires when its window starts, and sells
    amount / PV_PRICE); those beyond the window's day-ahead surplus are intraday."""
    bought: dict[tuple[str, int], list[Any]] = {}  # (buyer, window) -> its paid receipts
    receipts = imbalance = 0
    for n in sg.nodes.values():
        for c in collect.credit(n):
            if c["status"] != "accepted" or c["issuer_node"] == n.name:
                continue
            receipts += 1
            if c["created_at"] >= c["window_end"]:
                imbalance += 1  # a period that was over: the imbalance settled with the POD
                continue
            bought.setdefault((n.name, int(c["window_start"])), []).append(c)
    intraday_bought = 0
    for (name, start), paid in bought.items():
        plan = fc.day_ahead.get(name, {}).get(start)
        total = 0
        for c in sorted(paid, key=lambda c: c["created_at"]):
            intraday_bought += plan is not None and total >= plan
            total += int(c["wh"])
    intraday_sold = sold = 0
    for n in sg.nodes.values():
        if n.spec.kind != "pv":
            continue
        per: dict[int, list[int]] = {}
        for inv in collect.invoices(n):
            if inv.get("paid") and t0 <= inv.get("expires", 0) <= t1 + PERIOD_S:
                start = int(inv["expires"]) // PERIOD_S * PERIOD_S
                per.setdefault(start, []).append(int(inv["amount"]) * 1000 // PV_PRICE)
        for start, lots in per.items():
            sold += len(lots)
            plan = fc.day_ahead.get(n.name, {}).get(start, 0)
            total = 0
            for wh in sorted(lots, reverse=True):
                intraday_sold += total >= plan
                total += wh
    return {"receipts": receipts, "pv_receipts_sold": sold, "intraday_bought": intraday_bought,
            "intraday_sold": intraday_sold, "imbalance_receipts": imbalance,
            "forecast_revisions": fc.revisions,
            "forecast": {"bias": BIAS, "day_ahead_sigma": DAY_AHEAD_SIGMA,
                         "intraday_sigma": INTRADAY_SIGMA, "revise_every_s": REVISE_EVERY_S,
                         "revise_ahead_s": REVISE_AHEAD_S}}  # fmt: skip


def statements(sg: SimGrid, t0: float, t1: float) -> list[dict[str, Any]]:
    """Settlement at delivery, per 15-minute period (gateway/market/settlement.py, the market's
    engine): every receipt a node paid (its credit book: producers' receipts, the POD's
    last-resort and imbalance receipts) against the signed readings its gateway stored, the
    imbalance priced at the POD's imbalance price. One statement per node and period."""
    from gateway.ingest.store import ReadingStore
    from gateway.market.forecast import Window
    from gateway.market.readings import metered_periods
    from gateway.market.settlement import Contract, settle_period

    first = int(t0 // PERIOD_S * PERIOD_S)
    periods = [Window(s, s + PERIOD_S) for s in range(first, int(t1), PERIOD_S)]
    metered: list[dict[str, Any]] = [{} for _ in periods]
    contracts: list[tuple[int, int, Contract]] = []  # (window start, end, what was paid)
    for n in sg.nodes.values():
        if n.meter_pubkey:
            from sgcore.reading import meter_id_from_pubkey

            store = ReadingStore(n.state_dir / "readings.sqlite3")
            try:
                got = metered_periods(
                    store, {n.name: meter_id_from_pubkey(n.meter_pubkey)}, periods
                )
            finally:
                store.close()
            for i, m in enumerate(got):
                metered[i].update(m)
        for c in collect.credit(n):
            if c["status"] == "accepted" and c["issuer_node"] != n.name:
                paid = Contract(c["issuer_node"], n.name, int(c["wh"]), int(c["amount_msat"]),
                                int(c["amount_msat"]))  # fmt: skip
                contracts.append((int(c["window_start"]), int(c["window_end"]), paid))
    out = []
    for i, w in enumerate(periods):
        inside = [c for s, e, c in contracts if w.start <= s and e <= w.end]
        try:
            period = settle_period(w.start, w.end, inside, metered[i], IMBALANCE, "pod")
        except Exception as exc:  # noqa: BLE001 - a period that cannot be settled is reported
            out.append({"node": "-", "period": w.start, "error": str(exc)[:120], "amount_msat": 0})
            continue
        for st in period.statements:
            row = st.to_json()
            out.append({"node": row["node"], "period": w.start, **{k: v for k, v in row.items()
                        if k not in ("node", "start", "end")}, "amount_msat": row["net_msat"]})  # fmt: skip
    return out


def imbalances(statements: list[dict[str, Any]]) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {}
    for st in statements:
        if st["node"] not in ("-", "pod") and "imbalance_wh" in st:
            out.setdefault(st["node"], []).append([st["period"], st["imbalance_wh"]])
    return out


def slots(sg: SimGrid, t0: float, t1: float) -> list[dict[str, Any]]:
    """Price and volume per 15-minute slot, from the receipts the consumers paid."""
    per: dict[int, list[int]] = {}
    for n in sg.nodes.values():
        for c in collect.credit(n):
            if c["status"] != "accepted":
                continue
            s = int(c["window_start"]) // PERIOD_S * PERIOD_S
            acc = per.setdefault(s, [0, 0])
            acc[0] += int(c["wh"])
            acc[1] += int(c["amount_msat"])
    out = []
    for s in range(int(t0 // PERIOD_S * PERIOD_S), int(t1), PERIOD_S):
        wh, msat = per.get(s, [0, 0])
        out.append({"start": s, "volume_wh": wh,
                    "price_msat_per_kwh": msat * 1000 // wh if wh else None})  # fmt: skip
    return out
