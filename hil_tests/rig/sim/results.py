"""The results of a run: what every node recorded, checked against the driver's truth (the
invariants), with the money, the service of the prepaid loads and the settlement."""

from __future__ import annotations

import time
from typing import Any

from hil_tests.rig.sim import collect, credit_timing, invariants, market_report, money
from hil_tests.rig.sim.background import Phases
from hil_tests.rig.sim.driver import PERIOD_S, Driver
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.ledger_checks import (
    check_proofs,
    ledger_money,
    ledger_verify,
    locked_on_ledger,
    replicas_agree,
)
from hil_tests.rig.sim.market_config import EMERGENCY_WH
from hil_tests.rig.sim.scenarios import Faults

# the scenario checks that ask a running meter (a power-cut meter booted again and runs; a
# drifted clock corrected): with one of them the meters run until the grid stops
BOARD_CHECKS = {"power_cuts", "clock_drift"}


def results(
    sg: SimGrid,
    driver: Driver,
    faults: Faults,
    t0: float,
    t1: float,
    journaled: dict[str, list[int]],
    lags: list[dict[str, tuple[float, float]]],
    after: Phases | None = None,
) -> dict[str, Any]:
    mark = after.mark if after is not None else (lambda name: None)
    lag_end = _clock_lag(sg)  # the meters' clocks, asked while they run
    if not BOARD_CHECKS & faults.checks.keys():
        # nothing below needs a running meter (every close line read off the consoles, which
        # stay in memory): 55 boards idling at 75x asked ~2.4 of the 2 cores while the checks
        # of a --homes 50 run took 7 minutes
        collect.console_caught_up(sg)
        sg.stop_boards()
        mark("meters stopped")
    nodes: dict[str, dict[str, Any]] = {}
    node_periods: dict[str, dict[int, int]] = {}
    power: dict[str, list[list[float]]] = {}
    per_meter: dict[str, dict[str, Any]] = {}
    paid_wh: dict[str, int] = {}
    metered_prepaid: dict[str, int] = {}
    for name, n in sg.nodes.items():
        rows = collect.readings(n)
        truth = driver.truth[name] if n.spec.kind != "pod" else driver.pod_truth
        # nothing flowed before t0 (no load, no pulses): every reading counts, also those a meter
        # whose clock lags the rig's booked to an interval before t0
        inside = rows
        imp = sum(r["interval_import_wh"] for r in inside)
        exp = sum(r["interval_export_wh"] for r in inside)
        credit = collect.credit(n)
        # paid and taken: the gateway's book says accepted, or the meter's console does already
        # (its ack may still be on its way: 50 loaded gateways marked tokens accepted minutes
        # after their meters had taken them)
        took = collect.tokens_taken(n)
        accepted = [c for c in credit if c["status"] == "accepted"
                    or (c["status"] == "issued" and c["token_id"] in took)]  # fmt: skip
        paid_msat = sum(int(c["amount_msat"]) for c in accepted)
        nodes[name] = {
            "kind": n.spec.kind,
            "import_wh": imp if n.meter_pubkey else round(truth.import_wh),
            "export_wh": exp if n.meter_pubkey else round(truth.export_wh),
            "truth_import_wh": round(truth.import_wh),
            "truth_export_wh": round(truth.export_wh),
            "unserved_wh": round(truth.unserved_wh),
            "paid_msat": paid_msat,  # the credit its meter took; earned_msat etc.: money.py
            "credit_bought_wh": sum(int(c["wh"]) for c in accepted),
            "readings": len(rows),
        }
        if n.meter_pubkey:
            node_periods[name] = {
                int(r["start"]): int(r["interval_import_wh"]) - int(r["interval_export_wh"])
                for r in rows
                if r["end"] - r["start"] == PERIOD_S
            }
            power[name] = [[float(r["start"]), float(r["avg_power_w"])] for r in rows]
            recs = collect.all_records(n)
            seqs = [int(r["seq"]) for r in recs]
            per_meter[name] = {
                "seqs": seqs,
                "journaled_upto": max(journaled.get(name, [-1]), default=-1),
                "stored": len(recs),
                "anchored_upto": collect.anchored_upto(n),
                "journaled_not_stored": len(set(journaled.get(name, [])) - set(seqs)),
            }
        if n.spec.prepaid:
            # its balance left, credit still on its way, credit that came after its window began
            nodes[name].update(credit_timing.credit_figures(credit, took, imp, t0, t1))
            paid_wh[name] = nodes[name]["credit_bought_wh"]
            metered_prepaid[name] = nodes[name]["import_wh"]
    mark("readings and credit collected")
    proofs_checked, proofs_ok = check_proofs(sg)
    mark("proofs")
    chans = _quiet_channels(sg)
    balances, ledger_chans, ledger_quiet = ledger_money(
        sg, collect.channel_ids(sg) | {c["channel_id"] for c in chans}
    )  # the channel ids are read again at each try (collect.ledger_channel_ids)
    locked = locked_on_ledger(ledger_chans)
    per_node_money, money_summary = money.node_money(
        {name: sg.deposit_msat(name) for name in sg.nodes}, balances, ledger_chans,
        {c["channel_id"]: c.get("ends", {}) for c in chans},
        {n.node_id: name for name, n in sg.nodes.items()},
        {name: collect.invoices(n) for name, n in sg.nodes.items()},
        {name: collect.payments(n) for name, n in sg.nodes.items()},
    )  # fmt: skip
    for name, figures in per_node_money.items():
        nodes[name].update(figures)
    mark("channels and balances")
    verify_ok, verify_out = ledger_verify(sg)
    mark("ledger verify")
    pod_periods = {int(p): wh for p, wh in driver.pod_truth.period_wh.items()}
    lag = max([lag_end, *(abs(v[1]) for o in lags for v in o.values())])
    for v in nodes.values():
        v["metering_error_wh"] = (v["import_wh"] - v["export_wh"]) - (
            v["truth_import_wh"] - v["truth_export_wh"]
        )
    inv = {
        "energy_balance": invariants.energy_balance(
            {k: v["import_wh"] - v["export_wh"] for k, v in nodes.items() if v["kind"] != "pod"
             and sg.nodes[k].meter_pubkey},
            driver.pod_truth.import_wh - driver.pod_truth.export_wh, driver.loss_wh,
            sum(v["import_wh"] + v["export_wh"] for k, v in nodes.items()
                if sg.nodes[k].spec.meter_source == "bl0942" and v["kind"] != "pod"),
            node_periods, pod_periods, dict(driver.loss_period),
            sum(faults.unmetered().values())),
        "slot_energy_balance": invariants.slot_energy_balance(
            **collect.slot_balance_inputs(sg, driver, faults, lags)),
        "prepaid_within_credit": invariants.prepaid_within_credit(
            metered_prepaid, paid_wh, EMERGENCY_WH, 0,
            {k: collect.meter_credit_view(sg.nodes[k]) for k in metered_prepaid},
            {k: driver.truth[k].largest_step_wh() for k in metered_prepaid}),
        "readings_stored_once": invariants.readings_once(per_meter),
        "readings_anchored": invariants.anchored(per_meter, proofs_checked, proofs_ok),
        "channel_capacity_conserved": invariants.channels_conserved(chans),
        "ledger_supply_constant": invariants.supply_constant(
            sum(sg.deposit_msat(name) for name in sg.nodes), balances, locked, len(sg.nodes))
            | ledger_quiet,
        "ledger_verifies": invariants.ledger_verifies(verify_ok, verify_out),
        "money_accounted": invariants.money_accounted(money_summary),
    }  # fmt: skip
    critical = {n: t.relay_open_s for n, t in driver.truth.items()
                if sg.nodes[n].spec.kind == "critical"}  # fmt: skip
    if any(node.spec.kind == "critical" for node in sg.nodes.values()):  # --critical 0: n/a
        inv["critical_load_never_cut"] = invariants.critical_never_cut(critical)
    mark("invariants")
    statements = market_report.statements(sg, t0, t1)
    mark("settlement")
    if statements:
        inv["settlement_sums_to_zero"] = invariants.settlement_zero(statements)
    if len(sg.ledger_urls) > 1:
        inv["ledger_replicas_agree"] = replicas_agree(sg)
    for name, check in faults.checks.items():
        inv[name] = check() if callable(check) else check
    slots = market_report.slots(sg, t0, t1)
    return {
        "span": {"start": t0, "end": t1},
        "nodes": nodes,
        "power": power,
        "slots": slots,
        "channels": {f"{a}>{b}": pts for (a, b), pts in sg.channel_history.items()},
        "imbalances": market_report.imbalances(statements),
        "settlement": statements,
        "invariants": inv,
        "money": money_summary,
        "service": _service(nodes),
        "losses_wh": round(driver.loss_wh, 1),
        "meter_clock_lag_s": round(lag, 1),  # the largest seen during the day (every slot)
        "meter_clock_lag_end_s": round(lag_end, 1),
        "driver": {
            "steps": driver.steps,
            "longest_step_s": round(driver.longest_step_s, 1),
            "longest_step_real_s": round(driver.longest_step_real_s, 2),
        },  # fmt: skip
    }


def _service(nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How the prepaid loads (households, EV) were served: how many bought credit, how many
    drew at least 1 Wh through their relay (`got_delivery`: a load that drew 1 Wh of the 10 kWh
    it wanted counts), how many got everything their load asked for (`never_short`: nothing
    unserved), and what their loads wanted while their relay was open (`unserved_wh`); where
    their paid credit is (credit_timing.py: left on the meters, still on its way, come late)."""
    prepaid = {k: v for k, v in nodes.items() if v["kind"] in ("home", "ev")}
    return {
        "prepaid": len(prepaid),
        "bought_credit": sum(1 for v in prepaid.values() if v["credit_bought_wh"] > 0),
        "got_delivery": sum(1 for v in prepaid.values() if v["import_wh"] > 0),
        "never_short": sum(1 for v in prepaid.values() if v["unserved_wh"] == 0),
        "credit_bought_wh": sum(v["credit_bought_wh"] for v in prepaid.values()),
        "delivered_wh": sum(v["import_wh"] for v in prepaid.values()),
        "unserved_wh": sum(v["unserved_wh"] for v in prepaid.values()),
        **{k: sum(v.get(k, 0) for v in prepaid.values())
           for k in ("credit_left_wh", "credit_pending_wh", "credit_late_wh")},
        "credit_late_max_s": max((v.get("credit_late_max_s", 0) for v in prepaid.values()),
                                 default=0),
    }  # fmt: skip


def _clock_lag(sg: SimGrid) -> float:
    """The largest distance (virtual s) between a meter's clock and the rig's: a meter sets its
    clock from the gateway's signed time command, late by the message's transit (at 240x, a
    tenth of a real second is 24 virtual seconds), so it closes its intervals that much late."""
    return max([0.0, *(abs(v[1]) for v in collect.clock_offsets(sg).values())])


def _quiet_channels(sg: SimGrid, tries: int = 10) -> list[dict[str, Any]]:
    """The channels as both ends see them, read again (up to `tries` times) while a payment the
    market is still making leaves the two ends' snapshots apart; a real break persists."""
    chans = collect.channels(sg)
    for _ in range(tries - 1):
        if invariants.channels_conserved(chans)["holds"]:
            break
        time.sleep(0.5)
        chans = collect.channels(sg)
    return chans
