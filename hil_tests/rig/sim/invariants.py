"""The invariants of a simulated day, checked on what the running system recorded (issue 13 §5).

Each check returns {"holds": bool, ...figures}; the figures say why. Pure functions of the
collected data (hil_tests/rig/sim/collect.py) and the driver's physical truth.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

# per slot and feeder, from the meters' counters: hil_tests/rig/sim/slot_balance.py
from hil_tests.rig.sim.slot_balance import slot_energy_balance as slot_energy_balance

PERIOD_S = 900


def energy_balance(
    node_net_wh: dict[str, int],
    pod_net_wh: float,
    losses_wh: float,
    chip_wh: float,
    node_periods: dict[str, dict[int, int]],
    pod_periods: dict[int, float],
    loss_periods: dict[int, float],
    unmetered_wh: float = 0.0,
) -> dict[str, Any]:
    """The POD's metered net (import - export) equals the sum of the node meters' signed net
    plus the feeder's line losses (pandapower), within metering resolution: 2 Wh per meter
    (whole-Wh rounding at both ends of the span) plus 1 % of what the BL0942 meters counted
    (`chip_wh`; the emulated chip's count is read, quantised and booked by direction once per
    read). Checked over the whole span: a meter's clock lags the rig's by the time command's
    transit (many virtual seconds at high speed), so it books energy near a period boundary to
    the neighbouring period; the per-period gaps are reported, not judged. `unmetered_wh`:
    energy the rig knows flowed where no meter could count it (what a meter's power cut cost
    its count, measured from the pulses sent and judged by the scenario's own check)."""
    meters = len(node_net_wh)
    gap = pod_net_wh - sum(node_net_wh.values()) - losses_wh - unmetered_wh
    tolerance = 2 * meters + 0.01 * chip_wh
    worst, worst_at = 0.0, None
    common = set.intersection(*(set(p) for p in node_periods.values())) if node_periods else set()
    for p in sorted(common & set(pod_periods)):
        g = pod_periods[p] - sum(v[p] for v in node_periods.values()) - loss_periods.get(p, 0.0)
        if abs(g) > abs(worst):
            worst, worst_at = g, p
    return {
        "holds": meters > 0 and abs(gap) <= tolerance,
        "span_gap_wh": round(gap, 1),
        "tolerance_wh": round(tolerance, 1),
        "losses_wh": round(losses_wh, 1),
        "unmetered_wh": round(unmetered_wh, 1),
        "worst_period_gap_wh": round(worst, 1),
        "worst_period": worst_at,
    }


def prepaid_within_credit(
    metered_wh: dict[str, int],
    paid_wh: dict[str, int],
    emergency_wh: int,
    reserve_wh: int,
    meter_view: dict[str, dict[str, int]] | None = None,
    step_wh: dict[str, float] | None = None,
) -> dict[str, Any]:
    """No prepaid load received more than it paid for plus the emergency credit (the meter's
    committed-ahead reserve is part of what it paid for, so it only errs towards the payer).

    Within the rig's resolution: the rig sends a step's energy as one burst of S0 pulses (a step
    lasts 0.1 real s, 8..50 virtual s), where a real meter sees them one by one and opens its
    relay at the pulse that used its credit up. A meter whose credit ran out inside a burst is
    left over by up to that burst, and it books the difference as debt (a negative credit the
    next token pays off). Such a load is excused (`within_one_step`, listed) only when the
    meter's own signed books show it: it opened its relay for exhausted credit, its last reading
    carries a credit of -over or less, and the over is at most the largest step the rig sent it
    (`step_wh`, + 1 Wh of whole pulses). Anything else over is a failure (`over`)."""
    view = meter_view or {}
    over = {n: metered_wh[n] - paid_wh.get(n, 0) - emergency_wh for n in metered_wh}
    excused: dict[str, dict[str, Any]] = {}
    bad: dict[str, dict[str, Any]] = {}
    for n, v in over.items():
        if v <= 0:
            continue
        seen = {"over_wh": v, **view.get(n, {})}
        step = (step_wh or {}).get(n)
        if step is not None:
            seen["largest_step_wh"] = round(step, 1)
        books = seen.get("last_reading_credit_wh")
        if (step is not None and v <= round(step) + 1 and seen.get("exhausted_openings", 0) > 0
                and books is not None and books <= -v):  # fmt: skip
            excused[n] = seen
        else:
            bad[n] = seen
    worst = max([0, *(x["over_wh"] for x in bad.values())])
    out: dict[str, Any] = {
        "holds": not bad,
        "loads": len(metered_wh),
        "worst_over_wh": worst,
        "metered_wh": sum(metered_wh.values()),
        "paid_wh": sum(paid_wh.get(n, 0) for n in metered_wh),
    }
    if bad:
        out["over"] = dict(sorted(bad.items(), key=lambda kv: -kv[1]["over_wh"])[:5])
    if excused:
        out["within_one_step"] = dict(sorted(excused.items(), key=lambda kv: -kv[1]["over_wh"])[:5])
    return out


def readings_once(per_meter: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every reading a meter journaled is stored, exactly once: each meter's stored sequence
    numbers run 0..n-1 with no gap (the store's key makes a duplicate impossible, the gateway
    acknowledges only what it committed), and nothing the meter still held is missing."""
    problems = []
    stored = 0
    for name, m in per_meter.items():
        seqs = m["seqs"]
        stored += len(seqs)
        if seqs != list(range(len(seqs))):
            problems.append(f"{name}: stored sequence numbers are not 0..{len(seqs) - 1}")
        if m["journaled_not_stored"]:
            problems.append(f"{name}: {m['journaled_not_stored']} journaled records not stored")
    return {"holds": not problems and stored > 0, "stored": stored, "problems": problems[:5]}


def anchored(per_meter: dict[str, dict[str, Any]], proofs_checked: int, proofs_ok: int) -> dict:
    """Every reading the meters had journaled when the span ended is in a committed anchor batch
    on the ledger (later ones are still being made), and the inclusion
    proofs checked (`sgrid gateway proof` -> `sgrid ledger verify-proof`) verify."""
    missing = sum(max(0, m["journaled_upto"] - m["anchored_upto"]) for m in per_meter.values())
    return {
        "holds": missing == 0 and proofs_checked > 0 and proofs_ok == proofs_checked,
        "unanchored": missing,
        "proofs_checked": proofs_checked,
        "proofs_ok": proofs_ok,
    }


def channels_conserved(channels: list[dict[str, Any]]) -> dict[str, Any]:
    """Each channel: local + remote + what is in flight in HTLCs = capacity on each end, and
    both ends agree on the balances when neither has an update being settled (the market keeps
    paying while the rig reads the two ends one after the other)."""
    problems = []
    for ch in channels:
        cap = ch["capacity_msat"]
        ends = ch.get("ends", {})
        for name, e in ends.items():
            total = e["local_msat"] + e["remote_msat"] + e.get("in_flight_msat", 0)
            if e["state"] == "OPEN" and total != cap:
                problems.append(
                    f"{ch['channel_id'][:8]}@{name}: {e['local_msat']}+{e['remote_msat']}"
                    f"+{e.get('in_flight_msat', 0)}!={cap}"
                )
        if len(ends) == 2:
            (a, ea), (b, eb) = sorted(ends.items())
            quiet = not (ea.get("settling") or eb.get("settling"))
            if (
                quiet
                and ea["state"] == eb["state"] == "OPEN"
                and ea["local_msat"] != eb["remote_msat"]
            ):
                problems.append(f"{ch['channel_id'][:8]}: {a} and {b} disagree")
    return {"holds": not problems and bool(channels), "channels": len(channels),
            "problems": problems[:5]}  # fmt: skip


def supply_constant(
    deposits: int, balances: dict[str, int], locked: int, accounts: int | None = None
) -> dict[str, Any]:
    """The ledger's money: what was deposited is in balances or locked in open channels.
    `accounts`: how many balances there should be (one the ledger did not give is named)."""
    total = sum(balances.values()) + locked
    out = {"holds": total == deposits, "deposited_msat": deposits, "accounted_msat": total,
           "locked_msat": locked, "balances": len(balances)}  # fmt: skip
    if accounts is not None and len(balances) != accounts:
        out["balances_missing"] = accounts - len(balances)
    return out


def money_accounted(summary: dict[str, Any]) -> dict[str, Any]:
    """Every msat deposited is in a node's holdings or unassigned (`difference` 0), no channel
    holds less than nobody's money (`unassigned` never below zero, in any channel), every open
    channel's listing adds up to its capacity on its own (`bad_listings`: node@channel named),
    and no two ends of a channel disagree by more than could be in motion
    (`unexplained_between`): a negative remainder or a bad listing means its ends' listings or
    the ledger's balances count more money than the channel has, i.e. money created or assigned
    twice (hil_tests/rig/sim/money.py)."""
    negative = summary.get("negative_channels") or {}
    bad = summary.get("bad_listings") or []
    unexplained = summary.get("unexplained_between") or {}
    out = {"holds": summary.get("difference_msat") == 0 and summary.get("unassigned_msat", -1) >= 0
           and not negative and not bad and not unexplained,
           "difference_msat": summary.get("difference_msat"),
           "unassigned_msat": summary.get("unassigned_msat"),
           "between_listings_msat": summary.get("between_listings_msat", 0)}  # fmt: skip
    if negative:
        out["negative_channels"] = {cid[:16]: v for cid, v in negative.items()}
    if bad:
        out["bad_listings"] = list(bad)
    if unexplained:
        out["unexplained_between"] = {cid[:16]: v for cid, v in unexplained.items()}
    return out


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
