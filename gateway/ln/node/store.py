"""The node's channel database: SQLite, WAL, synchronous=FULL, one transaction per step.

Rule (docs/channels.md): the node commits *before* it sends any message carrying a signature,
a secret or a preimage, so after a crash it holds everything it ever gave away. ``commits``
counts transactions: with WAL and synchronous=FULL each one is one fsync of the WAL.

Private keys are never stored here: they are re-derived from the node seed (keys.py).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from gateway.durable_db import open_durable
from gateway.ln.channel.channel import Channel, ChannelState, Proposal
from gateway.ln.channel.commitment import Commitment, Htlc
from gateway.ln.channel.htlc import decode_updates, encode_updates
from gateway.ln.codec import bolt3
from gateway.ln.errors import ChannelStoreError
from gateway.ln.node.keys import NodeKeys
from gateway.ln.node.switch import Invoice, Payment, Switch, link_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channels (id BLOB PRIMARY KEY, state INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invoices (hash BLOB PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (hash BLOB PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (key BLOB PRIMARY KEY, doc TEXT NOT NULL);
"""


def channel_to_doc(ch: Channel) -> dict[str, Any]:
    p = ch.proposal
    return {
        "channel_id": ch.channel_id.hex(),
        "me": ch.me,
        "funding_pubs": [x.hex() for x in ch.funding_pubs],
        "node_ids": [x.hex() for x in ch.node_ids],
        "chain": ch.chain,
        "latest": ch.latest.encode().hex(),
        "capacity_msat": ch.capacity_msat,
        "state": int(ch.state),
        "sigs": [x.hex() for x in ch.sigs],
        "remote_ledger_sig": ch.remote_ledger_sig.hex(),
        "latest_proposer": ch.latest_proposer,
        "proposal": None
        if p is None
        else [
            p.commitment.encode().hex(),
            encode_updates(p.updates).hex(),
            p.sig.hex(),
            p.ledger_sig.hex(),
        ],
        "pending": encode_updates(ch.pending).hex(),
        "remote_next_hash": ch.remote_next_hash.hex(),
        "remote_prev_hash": ch.remote_prev_hash.hex(),
        "awaiting_revoke": ch.awaiting_revoke,
        "unrevoked_updates": encode_updates(ch.unrevoked_updates).hex(),
        "unrevoked_removed": [h.encode().hex() for h in ch.unrevoked_removed],
        "remote_secrets": ch.remote_secrets.to_bytes().hex(),
        "next_local_htlc_id": ch.next_local_htlc_id,
        "closing_sigs": [x.hex() for x in ch.closing_sigs],
        "extra": ch.extra,
    }


def channel_from_doc(d: dict[str, Any], keys: NodeKeys) -> Channel:
    cid = bytes.fromhex(d["channel_id"])
    h = bytes.fromhex

    p = d["proposal"]
    return Channel(
        channel_id=cid,
        me=d["me"],
        funding_priv=keys.funding_priv(cid),
        shachain_seed=keys.shachain_seed(cid),
        funding_pubs=(h(d["funding_pubs"][0]), h(d["funding_pubs"][1])),
        node_ids=(h(d["node_ids"][0]), h(d["node_ids"][1])),
        chain=d["chain"],
        node_priv=keys.node_priv,
        latest=Commitment.decode(h(d["latest"])),
        capacity_msat=d["capacity_msat"],
        state=ChannelState(d["state"]),
        sigs=(h(d["sigs"][0]), h(d["sigs"][1])),
        remote_ledger_sig=h(d["remote_ledger_sig"]),
        latest_proposer=d["latest_proposer"],
        proposal=None
        if p is None
        else Proposal(Commitment.decode(h(p[0])), decode_updates(h(p[1])), h(p[2]), h(p[3])),
        pending=list(decode_updates(h(d["pending"]))),
        remote_next_hash=h(d["remote_next_hash"]),
        remote_prev_hash=h(d["remote_prev_hash"]),
        awaiting_revoke=d["awaiting_revoke"],
        unrevoked_updates=decode_updates(h(d["unrevoked_updates"])),
        unrevoked_removed=tuple(Htlc.decode(h(x)) for x in d["unrevoked_removed"]),
        remote_secrets=bolt3.SecretStore.from_bytes(h(d["remote_secrets"])),
        next_local_htlc_id=d["next_local_htlc_id"],
        closing_sigs=(h(d["closing_sigs"][0]), h(d["closing_sigs"][1])),
        extra=d.get("extra", {}),
    )


class Store:
    def __init__(self, path: Path, keys: NodeKeys) -> None:
        self.path = path
        self.keys = keys
        self.commits = 0
        self.dirty_channels: set[bytes] = set()
        self.db = open_durable(path, SCHEMA, ChannelStoreError)
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='node_id'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ChannelStoreError(f"{path}: {exc}") from exc
        if row is None:
            self.set_meta("node_id", keys.node_id.hex())
        elif json.loads(row[0]) != keys.node_id.hex():
            raise ChannelStoreError(f"{path} belongs to node {row[0][:16]}, not this seed")

    def close(self) -> None:
        self.db.close()

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def mark(self, ch: Channel) -> None:
        """The channel persistence hook: remember to write it in the next commit."""
        self.dirty_channels.add(ch.channel_id)

    def load(self, switch: Switch) -> None:
        for (doc,) in self.db.execute("SELECT doc FROM channels"):
            ch = channel_from_doc(json.loads(doc), self.keys)
            ch.on_persist = self.mark
            switch.channels[ch.channel_id] = ch
        for (doc,) in self.db.execute("SELECT doc FROM invoices"):
            d = json.loads(doc)
            inv = Invoice(
                bytes.fromhex(d["hash"]),
                bytes.fromhex(d["preimage"]),
                d["amount"],
                d["cltv"],
                d["paid"],
                bytes.fromhex(d.get("secret", "")),
                d.get("expires", 0),
            )
            switch.invoices[inv.payment_hash] = inv
        for (doc,) in self.db.execute("SELECT doc FROM payments"):
            d = json.loads(doc)
            pay = Payment(
                bytes.fromhex(d["hash"]),
                d["amount"],
                d["fee"],
                d["status"],
                bytes.fromhex(d["preimage"]),
                d["reason"],
            )
            switch.payments[pay.payment_hash] = pay
        for (doc,) in self.db.execute("SELECT doc FROM links"):
            d = json.loads(doc)
            key = (bytes.fromhex(d["out"]), d["out_id"])
            switch.links[key] = (bytes.fromhex(d["in"]), d["in_id"])

    def commit(self, switch: Switch) -> int:
        """Write every dirty channel and switch record in one transaction (one fsync)."""
        if not self.dirty_channels and not switch.dirty:
            return 0
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            for cid in self.dirty_channels:
                ch = switch.channels[cid]
                db.execute(
                    "INSERT OR REPLACE INTO channels VALUES (?, ?, ?)",
                    (cid, int(ch.state), json.dumps(channel_to_doc(ch))),
                )
            for table, key in switch.dirty:
                doc = self._record(switch, table, key)
                if doc is None:
                    db.execute(f"DELETE FROM {table} WHERE {_KEY[table]} = ?", (key,))
                else:
                    db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", (key, doc))
            db.execute("COMMIT")
        except Exception as exc:  # an encoding error must not leave a transaction open either
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise ChannelStoreError(f"commit failed: {exc!r}") from exc
        self.dirty_channels.clear()
        switch.dirty.clear()
        self.commits += 1
        return 1

    @staticmethod
    def _record(switch: Switch, table: str, key: bytes) -> str | None:
        if table == "invoices":
            inv = switch.invoices.get(key)
            if inv is None:
                return None
            return json.dumps(
                {
                    "hash": key.hex(),
                    "preimage": inv.preimage.hex(),
                    "amount": inv.amount_msat,
                    "cltv": inv.min_final_cltv,
                    "paid": inv.paid,
                    "secret": inv.payment_secret.hex(),
                    "expires": inv.expires_at,
                }
            )
        if table == "payments":
            pay = switch.payments.get(key)
            if pay is None:
                return None
            return json.dumps(
                {
                    "hash": key.hex(),
                    "amount": pay.amount_msat,
                    "fee": pay.fee_msat,
                    "status": pay.status,
                    "preimage": pay.preimage.hex(),
                    "reason": pay.reason,
                }
            )
        link = switch.links.get((key[:32], int.from_bytes(key[32:], "big")))
        if link is None:
            return None
        assert link_key(key[:32], int.from_bytes(key[32:], "big")) == key
        return json.dumps(
            {
                "out": key[:32].hex(),
                "out_id": int.from_bytes(key[32:], "big"),
                "in": link[0].hex(),
                "in_id": link[1],
            }
        )


_KEY = {"invoices": "hash", "payments": "hash", "links": "key"}
