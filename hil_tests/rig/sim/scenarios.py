"""The sim's scenarios: a normal day, and days with one kind of fault injected (issue 13 §4).

A scenario is a list of faults, each at a fraction of the simulated span; `Faults.tick(now)`
fires them from the sim loop. Faults act only on the bench (processes, the broker, the wires):
never on production state the system could not meet in the field. What each one must leave
intact is checked by the invariants like any other day; some add their own check.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.ledger.client import LedgerClient
from hil_tests.rig.sim.grid import CHANNEL_MSAT, SimGrid


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
    done: bool = False


@dataclass
class Faults:
    sg: SimGrid
    scenario: str
    t_begin: float
    t_end: float
    log: Callable[[str], None]
    seed: int = 1
    faults: list[Fault] = field(default_factory=list)
    # scenario-specific results: {"holds", figures}, or a callable judged when the day is over
    checks: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        build = getattr(self, "_" + self.scenario.replace("-", "_"), None)
        if build is not None:
            build()

    def tick(self, now: float) -> None:
        frac = (now - self.t_begin) / max(1.0, self.t_end - self.t_begin)
        for f in self.faults:
            if not f.done and frac >= f.at:
                f.done = True
                self.log(f.what)
                f.action()

    def _add(self, at: float, what: str, action: Callable[[], None]) -> None:
        self.faults.append(Fault(at, what, action))

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
        rnd = random.Random(self.seed)
        metered = [n for n in self.sg.nodes.values() if n.board is not None]
        for i in range(6):
            n = rnd.choice(metered)

            def cut(n: Any = n) -> None:
                assert n.board is not None
                n.board.power_cut()
                time.sleep(0.3)
                n.board.start(wait_banner=False)

            self._add(0.15 + 0.12 * i, f"fault: power cut at {n.name}'s meter", cut)

    def _partition(self) -> None:
        n = self._victim("pv")
        span_h = (self.t_end - self.t_begin) / 3600
        hour = min(0.5, 1 / max(1.0, span_h))

        def cut() -> None:
            self.sg.proxies.isolate(n.name, True)

        def heal() -> None:
            self.sg.proxies.isolate(n.name, False)

        self._add(0.3, f"fault: {n.name} loses its peers (for an hour)", cut)
        self._add(0.3 + hour, f"fault healed: {n.name} reaches its peers again", heal)

    def _clock_drift(self) -> None:
        n = self._victim()

        def drift() -> None:
            assert n.board is not None
            n.board.control(op="rtc_shift", seconds=3600)

        self._add(0.3, f"fault: {n.name}'s meter clock jumps an hour ahead", drift)

    def _malicious_meter(self) -> None:
        n = self._victim()

        def attack() -> None:
            from hil_tests.rig.sim.attacks import forge_and_replay

            self.checks["malicious_meter"] = forge_and_replay(self.sg, n)

        self._add(0.5, f"fault: {n.name}'s account publishes forged and replayed readings", attack)

    def _unpaid_draw(self) -> None:
        # the household is configured without a market strategy (run.py): it never buys, yet its
        # load asks for power all day; its meter must keep the relay open
        n = self.sg.nodes["home-1"]

        def judged() -> dict[str, Any]:
            from hil_tests.rig.sim import collect

            rows = collect.readings(n)
            drawn = sum(int(r["interval_import_wh"]) for r in rows)
            bought = sum(int(c["wh"]) for c in collect.credit(n) if c["status"] == "accepted")
            return {"holds": bool(rows) and bought == 0 and drawn == 0, "node": n.name,
                    "readings": len(rows), "credit_bought_wh": bought, "drawn_wh": drawn}  # fmt: skip

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
            self.sg.start_gateway(n)
            self.sg.wait_answers(n)
            old = {c["channel_id"]: c for c in n.api("/channels")}
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
            try:  # the node may have published it already (an HTLC of the old state timed out)
                n.api("/close", {"channel_id": target, "force": True})
            except Exception as exc:  # noqa: BLE001 - judged on the ledger at the end
                self.log(f"{n.name}: force-close {target[:12]}: {exc}")
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
