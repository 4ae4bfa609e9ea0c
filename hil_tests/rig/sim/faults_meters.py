"""Faults at the meters: power cuts, a clock that jumps ahead, a meter account publishing forged
and replayed readings, a household that draws with no credit.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from hil_tests.rig.sim.node_config import CHECKPOINT_S
from hil_tests.rig.sim.slot_balance import Allowance

if TYPE_CHECKING:
    from hil_tests.rig.sim.scenarios import Faults


def power_cuts(faults: Faults) -> None:
    """Power cuts hit the prepaid households' meters (S0 meter, relay): without power the
    relay's contactor opens (it is held closed by the meter), so nothing flows while the
    meter cannot count. The critical household's meter is not cut (its load must never be:
    its meter sits on a backed-up supply), nor the producers' (a PV inverter keeps feeding
    when its meter's electronics die, and that energy would be metered by nobody).

    A cut costs the meter what it counted since its last checkpoint (docs/journal.md: at
    most the energy of the last `checkpoint_s`) and the pulses it had not taken in yet: that
    energy flowed (the POD metered it) but no meter signed for it. The rig knows every pulse
    it sent, so the loss is measured exactly (`unmetered_wh`, taken out of the energy
    balance) and judged against that bound."""
    rnd = random.Random(faults.seed)
    metered = [n for n in faults.sg.nodes.values() if n.board is not None and n.spec.prepaid]
    cuts: list[dict[str, Any]] = []
    sent: dict[str, list[tuple[float, int]]] = {n.name: [] for n in metered}
    steps: list[float] = []

    def watch(now: float) -> None:  # the pulses sent to each meter so far, every step
        steps.append(now)
        for n in metered:
            sent[n.name].append((now, int(n.energy.import_wh)))
            del sent[n.name][:-400]
        del steps[:-400]

    def bound(n: Any, now: float) -> int:
        """Pulses sent within the checkpoint period before `now`, plus the last two driver
        steps (pulses the firmware had not taken in yet)."""
        step = max((b - a for a, b in zip(steps[-4:], steps[-3:], strict=False)), default=0)
        since = now - CHECKPOINT_S - 2 * step
        hist = sent[n.name]
        then = next((wh for t, wh in reversed(hist) if t <= since), 0)
        return int(n.energy.import_wh) - then + 1

    for i in range(4):
        n = rnd.choice(metered)
        at = 0.15 + 0.18 * i + rnd.uniform(0.0, 0.05)

        def cut(n: Any = n) -> None:
            assert n.board is not None
            boots = _boots(n)
            now = faults.sg.clock.now()
            n.board.power_cut()
            if faults.driver is not None:
                faults.driver.relay[n.name] = 0  # the contactor drops with the meter's power
            cuts.append({"node": n.name, "boots_before": boots, "bound_wh": bound(n, now),
                         "t": now})  # fmt: skip
            time.sleep(0.3)
            n.board.start(wait_banner=False)

        faults.add(at, f"fault: power cut at {n.name}'s meter", cut, inline=True)

    def unmetered() -> dict[str, int]:
        """Per cut meter: the pulses the rig sent minus the import its last reading shows."""
        from hil_tests.rig.sim import collect

        out = {}
        for name in sorted({c["node"] for c in cuts}):
            rows = collect.readings(faults.sg.nodes[name])
            counted = int(rows[-1]["import_wh"]) if rows else 0
            out[name] = int(faults.sg.nodes[name].energy.import_wh) - counted
        return out

    def judged() -> dict[str, Any]:
        """Every cut meter booted again (its console says "meter ready" once per boot) and
        runs at the end; what the cuts cost its count stays within the documented bound;
        its journal and credit are judged by the common checks."""
        back = all(_boots(faults.sg.nodes[c["node"]]) > c["boots_before"] for c in cuts)
        alive = all(faults.sg.nodes[c["node"]].board.alive() for c in cuts)
        lost = unmetered()
        allowed = sum(c["bound_wh"] for c in cuts)
        unserved = {c["node"]: round(faults.driver.truth[c["node"]].unserved_wh)
                    for c in cuts} if faults.driver is not None else {}  # fmt: skip
        return {"holds": bool(cuts) and back and alive and 0 <= sum(lost.values()) <= allowed,
                "cuts": len(cuts), "meters": sorted(lost), "rebooted": back,
                "alive_at_end": alive, "unmetered_wh": lost, "bound_wh": allowed,
                "unserved_wh": unserved}  # fmt: skip

    faults.watches.append(watch)
    faults.unmetered = unmetered
    faults.allowances = lambda: [Allowance(c["node"], c["t"], c["bound_wh"]) for c in cuts]
    faults.checks["power_cuts"] = judged


def clock_drift(faults: Faults) -> None:
    """A meter's clock jumps an hour ahead while it runs: it signs readings from the future,
    which the gateway refuses (not stored, not acked: the meter keeps them) and answers with
    its signed, nonce'd `clock` command, which sets the meter's clock back."""
    n = faults.victim()
    seen: dict[str, Any] = {}

    def drift() -> None:
        assert n.board is not None
        seen["lines"] = len(n.board.console)
        at = faults.sg.clock.now()
        seen["shifted_rtc"] = n.board.control(op="rtc_shift", seconds=3600)
        faults.clock_drifts.setdefault(n.name, []).append((seen["lines"], at, 3600.0))
        seen["t"] = faults.sg.clock.now()

    def judged() -> dict[str, Any]:
        """Detected: the gateway refused readings from the future (its log); corrected:
        the meter applied the gateway's clock command and its clock ends within the
        command's transit of the rig's; its readings (signed ahead, too) are stored once
        and the slots balance: the common checks."""
        assert n.board is not None
        after = n.board.console[seen.get("lines", len(n.board.console)) :]
        set_back = [ln for ln in after if "clock set by the gateway" in ln]
        log = (n.dir / "gateway.log").read_text(errors="replace")
        refused = log.count("rejected reading: future")
        st = n.board.state()
        off = float(st["rtc"]) - float(st["virtual_now"])  # type: ignore[arg-type]
        # the meter follows the gateway's command late by its transit (virtual seconds at
        # high speed), never by anything near the hour it drifted
        tolerance = max(120.0, 2.0 * faults.sg.clock.speed)
        return {"holds": "shifted_rtc" in seen and refused > 0 and bool(set_back)
                and abs(off) <= tolerance, "node": n.name, "drift_s": 3600,
                "future_readings_refused": refused, "clock_commands_applied": len(set_back),
                "offset_at_end_s": round(off, 1), "tolerance_s": tolerance}  # fmt: skip

    faults.add(0.3, f"fault: {n.name}'s meter clock jumps an hour ahead", drift)
    faults.checks["clock_drift"] = judged


def malicious_meter(faults: Faults) -> None:
    n = faults.victim()

    def attack() -> None:
        from hil_tests.rig.sim.attacks import forge_and_replay

        faults.checks["malicious_meter"] = forge_and_replay(faults.sg, n)

    faults.add(0.5, f"fault: {n.name}'s account publishes forged and replayed readings", attack)


def unpaid_draw(faults: Faults) -> None:
    """The household is configured without a market strategy (run.py): it never buys, yet its
    load asks for power all day. Its meter must keep the relay open: it draws nothing beyond
    the emergency credit, and what its load wanted stays unserved."""
    n = faults.sg.nodes["home-1"]
    closed = {"s": 0.0, "last": None}

    def watch(now: float) -> None:  # the relay position the physics saw, every step
        if faults.driver is not None and closed["last"] is not None:
            if faults.driver.relay.get(n.name, 0):
                closed["s"] += now - closed["last"]
        closed["last"] = now

    def judged() -> dict[str, Any]:
        from hil_tests.rig.sim import collect
        from hil_tests.rig.sim.market_config import EMERGENCY_WH

        rows = collect.readings(n)
        drawn = sum(int(r["interval_import_wh"]) for r in rows)
        bought = sum(int(c["wh"]) for c in collect.credit(n) if c["status"] == "accepted")
        truth = faults.driver.truth[n.name] if faults.driver is not None else None
        wanted = round(truth.unserved_wh) if truth is not None else 0
        delivered = round(truth.import_wh) if truth is not None else 0
        return {"holds": bool(rows) and bought == 0 and drawn <= EMERGENCY_WH
                and delivered <= EMERGENCY_WH and wanted > 0 and closed["s"] == 0,
                "node": n.name, "readings": len(rows), "credit_bought_wh": bought,
                "metered_wh": drawn, "delivered_wh": delivered, "wanted_wh": wanted,
                "relay_closed_s": round(closed["s"], 1),
                "emergency_wh": EMERGENCY_WH}  # fmt: skip

    faults.watches.append(watch)
    faults.add(0.0, f"fault: {n.name}'s load draws all day; it buys no credit", lambda: None)
    faults.checks["unpaid_draw"] = judged


def _boots(n: Any) -> int:
    return sum("meter ready" in line for line in n.board.console) if n.board is not None else 0
