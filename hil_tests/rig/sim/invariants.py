"""The invariants of a simulated day, checked on what the running system recorded (issue 13 §5).

Each check returns {"holds": bool, ...figures}; the figures say why. Pure functions of the
collected data (hil_tests/rig/sim/collect.py) and the driver's physical truth.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

PERIOD_S = 900


def energy_balance(
    node_periods: dict[str, dict[int, int]],
    pod_periods: dict[int, float],
    loss_periods: dict[int, float],
) -> dict[str, Any]:
    """Per 15-minute period: the POD's metered net (import - export) equals the sum of the node
    meters' signed net plus the feeder's line losses (pandapower), within metering resolution.

    Resolution: each meter rounds to whole Wh per interval (1 Wh), and a pulse that reaches a
    meter a moment after the rig sent it can land in the next interval, so the tolerance is
    2 Wh per meter plus 3 % of the energy that moved in the period. Over the whole span the
    periods' gaps must add up to no more than 2 Wh per meter (nothing lost, nothing created).
    Periods not yet signed by every meter are left out."""
    if not node_periods:
        return {"holds": False, "periods": 0, "why": "no readings"}
    common = set.intersection(*(set(p) for p in node_periods.values()))
    periods = sorted(p for p in common if p in pod_periods)
    meters = len(node_periods)
    worst, worst_at, day = 0.0, None, 0.0
    ok = bool(periods)
    for p in periods:
        nodes = sum(v[p] for v in node_periods.values())
        moved = sum(abs(v[p]) for v in node_periods.values())
        gap = pod_periods[p] - nodes - loss_periods.get(p, 0.0)
        day += gap
        if abs(gap) > 2 * meters + 0.03 * moved:
            ok = False
        if abs(gap) > abs(worst):
            worst, worst_at = gap, p
    return {
        "holds": ok and abs(day) <= 2 * meters,
        "periods": len(periods),
        "worst_gap_wh": round(worst, 1),
        "worst_period": worst_at,
        "span_gap_wh": round(day, 1),
        "losses_wh": round(sum(loss_periods.get(p, 0.0) for p in periods), 1),
    }


def prepaid_within_credit(
    metered_wh: dict[str, int], paid_wh: dict[str, int], emergency_wh: int, reserve_wh: int
) -> dict[str, Any]:
    """No prepaid load received more than it paid for plus the emergency credit (the meter's
    committed-ahead reserve is part of what it paid for, so it only errs towards the payer)."""
    over = {n: metered_wh[n] - paid_wh.get(n, 0) - emergency_wh for n in metered_wh}
    worst = max(over.values(), default=0)
    return {
        "holds": worst <= 0,
        "loads": len(metered_wh),
        "worst_over_wh": worst,
        "metered_wh": sum(metered_wh.values()),
        "paid_wh": sum(paid_wh.get(n, 0) for n in metered_wh),
    }


def readings_once(per_meter: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every reading a meter journaled is stored exactly once (contiguous sequence numbers, no
    duplicates) and acknowledged (nothing left unacked in the meter's journal at the end)."""
    problems = []
    stored = 0
    for name, m in per_meter.items():
        seqs = m["seqs"]
        stored += len(seqs)
        if seqs != list(range(len(seqs))):
            problems.append(f"{name}: sequence numbers not 0..{len(seqs) - 1}")
        if m["journal_unacked"]:
            problems.append(f"{name}: {m['journal_unacked']} journaled records never acked")
        if m.get("meter_next_seq") is not None and m["meter_next_seq"] != len(seqs):
            problems.append(f"{name}: meter at seq {m['meter_next_seq']}, store has {len(seqs)}")
    return {"holds": not problems and stored > 0, "stored": stored, "problems": problems[:5]}


def anchored(per_meter: dict[str, dict[str, Any]], proofs_checked: int, proofs_ok: int) -> dict:
    """Every stored reading is in a committed anchor batch, and the proofs checked verify."""
    unanchored = {n: m["stored"] - m["anchored"] for n, m in per_meter.items()}
    missing = sum(max(0, v) for v in unanchored.values())
    return {
        "holds": missing == 0 and proofs_checked > 0 and proofs_ok == proofs_checked,
        "unanchored": missing,
        "proofs_checked": proofs_checked,
        "proofs_ok": proofs_ok,
    }


def channels_conserved(channels: list[dict[str, Any]]) -> dict[str, Any]:
    """Each channel: both ends agree, and local + remote = capacity on each end."""
    problems = []
    for ch in channels:
        cap = ch["capacity_msat"]
        ends = ch.get("ends", {})
        for name, e in ends.items():
            if e["state"] == "OPEN" and e["local_msat"] + e["remote_msat"] != cap:
                problems.append(
                    f"{ch['channel_id'][:8]}@{name}: {e['local_msat']}+{e['remote_msat']}!={cap}"
                )
        if len(ends) == 2:
            (a, ea), (b, eb) = sorted(ends.items())
            if ea["state"] == eb["state"] == "OPEN" and ea["local_msat"] != eb["remote_msat"]:
                problems.append(f"{ch['channel_id'][:8]}: {a} and {b} disagree")
    return {"holds": not problems and bool(channels), "channels": len(channels),
            "problems": problems[:5]}  # fmt: skip


def supply_constant(deposits: int, balances: dict[str, int], locked: int) -> dict[str, Any]:
    """The ledger's money: what was deposited is in balances or locked in open channels."""
    total = sum(balances.values()) + locked
    return {"holds": total == deposits, "deposited_msat": deposits, "accounted_msat": total,
            "locked_msat": locked}  # fmt: skip


def settlement_zero(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """Settlement statements of every period sum to zero money created."""
    per_period: dict[Any, int] = defaultdict(int)
    for s in statements:
        per_period[s.get("period")] += int(s.get("amount_msat", 0))
    bad = {p: v for p, v in per_period.items() if v != 0}
    return {"holds": bool(statements) and not bad, "periods": len(per_period),
            "statements": len(statements), "nonzero_periods": len(bad)}  # fmt: skip


def critical_never_cut(open_s: dict[str, float]) -> dict[str, Any]:
    worst = max(open_s.values(), default=0.0)
    return {"holds": bool(open_s) and worst == 0, "loads": len(open_s), "cut_s": round(worst, 1)}


def ledger_verifies(ok: bool, output: str) -> dict[str, Any]:
    return {"holds": ok, "output": output.strip().splitlines()[-1][:120] if output else ""}
