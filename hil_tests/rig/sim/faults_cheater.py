"""A cheater: a node restores an old channel state and force-closes with it; the ledger must
penalize it and give the victim the whole capacity.
"""

from __future__ import annotations

import shutil
import sqlite3
from typing import TYPE_CHECKING, Any

from gateway.ledger.client import LedgerClient
from gateway.ln.node.ledger_http import HttpLedger
from hil_tests.gateway.ln.stale_state import publish_stored_state, stored_channels
from hil_tests.rig.sim.node import close_client
from hil_tests.rig.sim.node_config import CHANNEL_MSAT

if TYPE_CHECKING:
    from hil_tests.rig.sim.scenarios import Faults


def cheater(faults: Faults) -> None:
    n = faults.victim()
    backup = n.dir / "channels.old.sqlite"

    def save() -> None:
        db = _channel_db(n)
        with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)

    def cheat() -> None:
        assert n.gateway is not None
        before = {c["channel_id"]: c for c in n.api("/channels")}
        client = LedgerClient(faults.sg.ledger_urls, retries=3)
        balances = {m.node_id: int(client.balance(m.node_id)) for m in faults.sg.nodes.values()}
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
        by_id = {m.node_id: m for m in faults.sg.nodes.values()}
        victim = by_id[old[target]["peer"]]
        victim_before = balances[victim.node_id]
        victim_chans = {c["channel_id"] for c in victim.api("/channels")}
        capacity = int(old[target]["capacity_msat"])
        # the cheat itself, on purpose, while the node is down: its own node would refuse
        # once the peer's reestablish proves the state stale (data-loss protection)
        try:
            ledger = HttpLedger(",".join(faults.sg.ledger_urls))
            try:
                publish_stored_state(db, target, ledger.chain, ledger.submit)
            finally:
                close_client(ledger.client)
        except Exception as exc:  # noqa: BLE001 - judged on the ledger at the end
            faults.log(f"{n.name}: publishing {target[:12]}: {exc}")
        faults.sg.start_gateway(n)
        faults.sg.wait_answers(n)
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

        faults.checks["cheater"] = judged

    faults.add(0.1, f"{n.name} backs up its channel database", save)
    faults.add(0.55, f"fault: {n.name} restores the old channel state and force-closes", cheat)


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
