"""What a cheater does: publish a channel state it holds, revoked or not, straight to the ledger.

The node itself never publishes a state its peer proved stale (gateway/ln/channel/data_loss.py),
so the tests and the sim's `cheater` scenario play the cheater here, from the node's own (old)
channel database and keys, while its gateway is down: the victim's node must then take the
channel by itself (the penalty, production code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.ln.channel.commitment import sign
from gateway.ln.channel.ledger_bodies import digest, force_close_body
from gateway.ln.node.keys import load_or_create
from gateway.ln.node.store import Store
from gateway.ln.node.switch import Switch


def _load(db: Path) -> tuple[Any, Switch]:
    """The node keys beside `db` and the channels it holds (the database closed again)."""
    keys = load_or_create(db.parent)
    store, switch = Store(db, keys), Switch(keys.node_id)
    try:
        store.load(switch)
    finally:
        store.close()
    return keys, switch


def stored_channels(db: Path) -> dict[str, dict[str, Any]]:
    """Channel id (hex) -> what the database holds of it: commitment, balances, peer, capacity."""
    keys, switch = _load(db)
    return {
        cid.hex(): {
            "commitment": ch.latest.number,
            "local_msat": ch.local_balance,
            "peer": ch.node_ids[ch.remote].hex(),
            "capacity_msat": ch.capacity_msat,
            "state": ch.state.name,
        }
        for cid, ch in switch.channels.items()
    }


def publish_stored_state(db: Path, channel_id: str, chain: str, submit: Any) -> int:
    """Sign and submit (`submit(body, sigs)`) a force close with the newest state `db` holds of
    the channel; the commitment number published."""
    keys, switch = _load(db)
    ch = switch.channels[bytes.fromhex(channel_id)]
    state = ch.ledger_state(ch.latest, ch.me)
    body = force_close_body(chain, state, ch.remote_ledger_sig)
    submit(body, {keys.node_id.hex(): sign(keys.node_priv, digest(body)).hex()})
    return int(state["number"])
