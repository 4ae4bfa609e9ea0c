"""The sim's scenarios: a normal day, and days with one kind of fault injected (issue 13 §4).

A scenario is a list of faults, each at a fraction of the simulated span; `Faults.tick(now)`
fires them from the sim loop, on a worker thread in their order (a gateway's restart takes
seconds, which at 240x are many virtual minutes: the physics must go on meanwhile, or it would
book that whole gap at the relay positions from before it), and `Faults.join()` waits for them. Faults act only on the bench (processes, the broker, the wires):
never on production state the system could not meet in the field. What each one must leave
intact is checked by the invariants like any other day; some add their own check.
"""

from __future__ import annotations

import queue
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.ledger.client import LedgerClient
from gateway.ln.node.ledger_http import HttpLedger
from hil_tests.gateway.ln.stale_state import publish_stored_state, stored_channels
from hil_tests.rig.sim.grid import CHANNEL_MSAT, CHECKPOINT_S, SimGrid, close_client
from hil_tests.rig.sim.slot_balance import Allowance


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("normal", "a day with no fault"),
        Scenario("broker-restart", "mosquitto is stopped at 40 % of the day and restarted"),
        Scenario("gateway-kill", "a household's gateway is SIGKILLed mid-day and restarted"),
        Scenario("power-cuts", "random meters lose power (SIGKILL) and come back"),
        Scenario("partition", "a node loses its peers for an hour (its meter keeps going)"),
        Scenario("clock-drift", "a meter's clock is set an hour ahead; the gateway corrects it"),
        Scenario("malicious-meter", "a meter account publishes forged and replayed readings"),
        Scenario("unpaid-draw", "a household with no credit tries to draw energy all day"),
        Scenario("cheater", "a node restores an old channel state and force-closes with it"),
        Scenario("pod-outage", "the POD's gateway is down for an hour"),
    )
}


@dataclass
class Fault:
    at: float  # fraction of the span
    what: str
    action: Callable[[], None]
    inline: bool = False  # run in the sim loop itself (short, and it must be between two steps)
    done: bool = False


@dataclass
class Faults:
    sg: SimGrid
    scenario: str
    t_begin: float
    t_end: float
    log: Callable[[str], None]
    seed: int = 1
    driver: Any = None  # the physics (hil_tests/rig/sim/driver.py): its truth, relay positions
    faults: list[Fault] = field(default_factory=list)
    # scenario-specific results: {"holds", figures}, or a callable judged when the day is over
    checks: dict[str, Any] = field(default_factory=dict)
    watches: list[Callable[[float], None]] = field(default_factory=list)  # called every step
    # energy the rig knows flowed where no meter could count it, per node (power-cuts)
    unmetered: Callable[[], dict[str, int]] = dict
    # what each power cut may have cost its meter's count, where and when (the slot balance)
    allowances: Callable[[], list[Allowance]] = list
    # per meter: (its console lines, the rig's time when the rig put its clock ahead, seconds)
    clock_drifts: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._error: Exception | None = None
        self._worker = threading.Thread(target=self._work, name="faults", daemon=True)
        self._worker.start()
        build = getattr(self, "_" + self.scenario.replace("-", "_"), None)
        if build is not None:
            build()

    def tick(self, now: float) -> None:
        for watch in self.watches:
            watch(now)
        frac = (now - self.t_begin) / max(1.0, self.t_end - self.t_begin)
        for f in self.faults:
            if not f.done and frac >= f.at:
                f.done = True
                self.log(f.what)
                if f.inline:
                    f.action()
                else:
                    self._queue.put(f.action)

    def join(self, timeout: float = 600.0) -> None:
        """Wait for the faults still running; raise what one of them raised."""
        self._queue.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            raise RuntimeError(f"a fault action still runs after {timeout:.0f} s")
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (action := self._queue.get()) is not None:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - raised again by join()
                self._error = self._error or exc

    def _add(self, at: float, what: str, action: Callable[[], None], inline: bool = False) -> None:
        self.faults.append(Fault(at, what, action, inline))

    def _victim(self, kind: str = "home") -> Any:
        return next(n for n in self.sg.nodes.values() if n.spec.kind == kind)

    # --- the scenarios ---------------------------------------------------------------------------

    def _broker_restart(self) -> None:
        def restart() -> None:
            self.sg.broker.stop()
            time.sleep(2.0)
            self.sg.broker.start()

        self._add(0.4, "fault: mosquitto stopped (restarts in 2 s)", restart)

    def _gateway_kill(self) -> None:
        n = self._victim()

        def kill() -> None:
            assert n.gateway is not None
            n.gateway.kill()
            n.gateway.close()
            time.sleep(1.0)
            self.sg.start_gateway(n)

        self._add(0.45, f"fault: {n.name}'s gateway SIGKILLed (restarted)", kill)

    def _power_cuts(self) -> None:
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
        rnd = random.Random(self.seed)
        metered = [n for n in self.sg.nodes.values() if n.board is not None and n.spec.prepaid]
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
                now = self.sg.clock.now()
                n.board.power_cut()
                if self.driver is not None:
                    self.driver.relay[n.name] = 0  # the contactor drops with the meter's power
                cuts.append({"node": n.name, "boots_before": boots, "bound_wh": bound(n, now),
                             "t": now})  # fmt: skip
                time.sleep(0.3)
                n.board.start(wait_banner=False)

            self._add(at, f"fault: power cut at {n.name}'s meter", cut, inline=True)

        def unmetered() -> dict[str, int]:
            """Per cut meter: the pulses the rig sent minus the import its last reading shows."""
            from hil_tests.rig.sim import collect

            out = {}
            for name in sorted({c["node"] for c in cuts}):
                rows = collect.readings(self.sg.nodes[name])
                counted = int(rows[-1]["import_wh"]) if rows else 0
                out[name] = int(self.sg.nodes[name].energy.import_wh) - counted
            return out

        def judged() -> dict[str, Any]:
            """Every cut meter booted again (its console says "meter ready" once per boot) and
            runs at the end; what the cuts cost its count stays within the documented bound;
            its journal and credit are judged by the common checks."""
            back = all(_boots(self.sg.nodes[c["node"]]) > c["boots_before"] for c in cuts)
            alive = all(self.sg.nodes[c["node"]].board.alive() for c in cuts)
            lost = unmetered()
            allowed = sum(c["bound_wh"] for c in cuts)
            unserved = {c["node"]: round(self.driver.truth[c["node"]].unserved_wh)
                        for c in cuts} if self.driver is not None else {}  # fmt: skip
            return {"holds": bool(cuts) and back and alive and 0 <= sum(lost.values()) <= allowed,
                    "cuts": len(cuts), "meters": sorted(lost), "rebooted": back,
                    "alive_at_end": alive, "unmetered_wh": lost, "bound_wh": allowed,
                    "unserved_wh": unserved}  # fmt: skip

        self.watches.append(watch)
        self.unmetered = unmetered
        self.allowances = lambda: [Allowance(c["node"], c["t"], c["bound_wh"]) for c in cuts]
        self.checks["power_cuts"] = judged

    def _partition(self) -> None:
        """The household loses the wires to its channel peers (the relays of the bench are cut)
        for an hour; its meter and the broker stay reachable. While cut off no payment can move
        its channels; none of them is closed over it; once healed it buys again."""
        n = self._victim()
        span_h = (self.t_end - self.t_begin) / 3600
        hour = min(0.5, 1 / max(1.0, span_h))
        seen: dict[str, Any] = {}

        def local() -> dict[str, int]:
            return {c["channel_id"]: int(c["local_msat"]) for c in n.api("/channels")}

        def cut() -> None:
            self.sg.proxies.isolate(n.name, True)
            time.sleep(0.5)  # a payment whose last message was on the wire settles or stops
            seen["at_cut"] = local()
            seen["t_cut"] = self.sg.clock.now()

        def heal() -> None:
            seen["before_heal"] = local()
            seen["t_heal"] = self.sg.clock.now()
            self.sg.proxies.isolate(n.name, False)

        def judged() -> dict[str, Any]:
            from hil_tests.rig.sim import collect

            moved = sum(abs(seen["before_heal"].get(cid, 0) - v)
                        for cid, v in seen.get("at_cut", {}).items())  # fmt: skip
            mine = [c for c in collect.channels(self.sg) if n.name in c.get("ends", {})]
            open_both = all(len(c["ends"]) == 2 and all(e["state"] == "OPEN"
                            for e in c["ends"].values()) for c in mine)  # fmt: skip
            t_heal = seen.get("t_heal", float("inf"))
            bought_after = sum(int(c["wh"]) for c in collect.credit(n)
                               if c["status"] == "accepted" and c["created_at"] >= t_heal)  # fmt: skip
            return {"holds": "at_cut" in seen and "before_heal" in seen and moved == 0
                    and bool(mine) and open_both and bought_after > 0, "node": n.name,
                    "cut_off_virtual_s": round(t_heal - seen.get("t_cut", t_heal)),
                    "moved_while_cut_msat": moved, "channels": len(mine),
                    "all_open_both_ends": open_both, "bought_after_heal_wh": bought_after}  # fmt: skip

        self._add(0.3, f"fault: {n.name} loses its peers (for an hour)", cut)
        self._add(0.3 + hour, f"fault healed: {n.name} reaches its peers again", heal)
        self.checks["partition"] = judged

    def _clock_drift(self) -> None:
        """A meter's clock jumps an hour ahead while it runs: it signs readings from the future,
        which the gateway refuses (not stored, not acked: the meter keeps them) and answers with
        its signed, nonce'd `clock` command, which sets the meter's clock back."""
        n = self._victim()
        seen: dict[str, Any] = {}

        def drift() -> None:
            assert n.board is not None
            seen["lines"] = len(n.board.console)
            at = self.sg.clock.now()
            seen["shifted_rtc"] = n.board.control(op="rtc_shift", seconds=3600)
            self.clock_drifts.setdefault(n.name, []).append((seen["lines"], at, 3600.0))
            seen["t"] = self.sg.clock.now()

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
            tolerance = max(120.0, 2.0 * self.sg.clock.speed)
            return {"holds": "shifted_rtc" in seen and refused > 0 and bool(set_back)
                    and abs(off) <= tolerance, "node": n.name, "drift_s": 3600,
                    "future_readings_refused": refused, "clock_commands_applied": len(set_back),
                    "offset_at_end_s": round(off, 1), "tolerance_s": tolerance}  # fmt: skip

        self._add(0.3, f"fault: {n.name}'s meter clock jumps an hour ahead", drift)
        self.checks["clock_drift"] = judged

    def _malicious_meter(self) -> None:
        n = self._victim()

        def attack() -> None:
            from hil_tests.rig.sim.attacks import forge_and_replay

            self.checks["malicious_meter"] = forge_and_replay(self.sg, n)

        self._add(0.5, f"fault: {n.name}'s account publishes forged and replayed readings", attack)

    def _unpaid_draw(self) -> None:
        """The household is configured without a market strategy (run.py): it never buys, yet its
        load asks for power all day. Its meter must keep the relay open: it draws nothing beyond
        the emergency credit, and what its load wanted stays unserved."""
        n = self.sg.nodes["home-1"]
        closed = {"s": 0.0, "last": None}

        def watch(now: float) -> None:  # the relay position the physics saw, every step
            if self.driver is not None and closed["last"] is not None:
                if self.driver.relay.get(n.name, 0):
                    closed["s"] += now - closed["last"]
            closed["last"] = now

        def judged() -> dict[str, Any]:
            from hil_tests.rig.sim import collect
            from hil_tests.rig.sim.run import EMERGENCY_WH

            rows = collect.readings(n)
            drawn = sum(int(r["interval_import_wh"]) for r in rows)
            bought = sum(int(c["wh"]) for c in collect.credit(n) if c["status"] == "accepted")
            truth = self.driver.truth[n.name] if self.driver is not None else None
            wanted = round(truth.unserved_wh) if truth is not None else 0
            delivered = round(truth.import_wh) if truth is not None else 0
            return {"holds": bool(rows) and bought == 0 and drawn <= EMERGENCY_WH
                    and delivered <= EMERGENCY_WH and wanted > 0 and closed["s"] == 0,
                    "node": n.name, "readings": len(rows), "credit_bought_wh": bought,
                    "metered_wh": drawn, "delivered_wh": delivered, "wanted_wh": wanted,
                    "relay_closed_s": round(closed["s"], 1),
                    "emergency_wh": EMERGENCY_WH}  # fmt: skip

        self.watches.append(watch)
        self._add(0.0, f"fault: {n.name}'s load draws all day; it buys no credit", lambda: None)
        self.checks["unpaid_draw"] = judged

    def _cheater(self) -> None:
        n = self._victim()
        backup = n.dir / "channels.old.sqlite"

        def save() -> None:
            db = _channel_db(n)
            with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
                src.backup(dst)

        def cheat() -> None:
            assert n.gateway is not None
            before = {c["channel_id"]: c for c in n.api("/channels")}
            client = LedgerClient(self.sg.ledger_urls, retries=3)
            balances = {m.node_id: int(client.balance(m.node_id)) for m in self.sg.nodes.values()}
            n.gateway.kill()
            n.gateway.close()
            db = _channel_db(n)
            for suffix in ("", "-wal", "-shm"):
                db.with_name(db.name + suffix).unlink(missing_ok=True)
            shutil.copy(backup, db)
            old = stored_channels(db)
            # a revoked state: the restored commitment is older than the one the node had; the
            # cheat pays off where the old state gave the cheater more
            stale = [cid for cid, c in old.items()
                     if cid in before and c["commitment"] < before[cid]["commitment"]]  # fmt: skip
            stale.sort(key=lambda cid: before[cid]["local_msat"] - old[cid]["local_msat"])
            moved = stale
            target = stale[0] if stale else next(iter(old))
            by_id = {m.node_id: m for m in self.sg.nodes.values()}
            victim = by_id[old[target]["peer"]]
            victim_before = balances[victim.node_id]
            victim_chans = {c["channel_id"] for c in victim.api("/channels")}
            capacity = int(old[target]["capacity_msat"])
            # the cheat itself, on purpose, while the node is down: its own node would refuse
            # once the peer's reestablish proves the state stale (data-loss protection)
            try:
                ledger = HttpLedger(",".join(self.sg.ledger_urls))
                try:
                    publish_stored_state(db, target, ledger.chain, ledger.submit)
                finally:
                    close_client(ledger.client)
            except Exception as exc:  # noqa: BLE001 - judged on the ledger at the end
                self.log(f"{n.name}: publishing {target[:12]}: {exc}")
            self.sg.start_gateway(n)
            self.sg.wait_answers(n)
            figures = {"cheater": n.name, "victim": victim.name, "channel_id": target[:16],
                       "revoked_state": bool(moved), "capacity_msat": capacity,
                       "stale_local_msat": old[target]["local_msat"],
                       "true_local_msat": before.get(target, {}).get("local_msat")}  # fmt: skip

            def judged() -> dict[str, Any]:
                """At the end of the day: the ledger shows the channel penalized and the whole
                capacity went to the victim's balance (less its share of the channels its node
                opened again along the feeder since)."""
                status = str(client.channel(target).get("status"))
                new = {c["channel_id"] for c in victim.api("/channels")} - victim_chans
                reopened = [cid for cid in new if _on_ledger(client, cid)]
                gained = int(client.balance(victim.node_id)) - victim_before
                gained += CHANNEL_MSAT * len(reopened)
                return {"holds": bool(moved) and status == "penalized" and gained == capacity,
                        **figures, "ledger_status": status, "victim_gained_msat": gained,
                        "victim_reopened_channels": len(reopened)}  # fmt: skip

            self.checks["cheater"] = judged

        self._add(0.1, f"{n.name} backs up its channel database", save)
        self._add(0.55, f"fault: {n.name} restores the old channel state and force-closes", cheat)

    def _pod_outage(self) -> None:
        pod = self.sg.nodes["pod"]
        span_h = (self.t_end - self.t_begin) / 3600
        hour = min(0.5, 1 / max(1.0, span_h))

        def down() -> None:
            assert pod.gateway is not None
            pod.gateway.terminate()
            pod.gateway.close()

        def up() -> None:
            self.sg.start_gateway(pod)

        self._add(0.35, "fault: the POD's gateway goes down (for an hour)", down)
        self._add(0.35 + hour, "fault healed: the POD's gateway is back", up)


def _boots(n: Any) -> int:
    return sum("meter ready" in line for line in n.board.console) if n.board is not None else 0


def _channel_db(n: Any) -> Any:
    found = sorted(n.state_dir.rglob("channels.sqlite"))
    if not found:
        raise RuntimeError(f"{n.name}: no channel database under {n.state_dir}")
    return found[0]


def _on_ledger(client: LedgerClient, channel_id: str) -> bool:
    """The channel is funded on the ledger (its funding has left the parties' balances)."""
    try:
        return bool(client.channel(channel_id))
    except Exception:  # noqa: BLE001 - not funded yet
        return False
