"""The node's channel database: SQLite, WAL, synchronous=FULL, one transaction per step.

Rule (docs/channels.md): the node commits *before* it sends any message carrying a signature,
a secret or a preimage, so after a crash it holds everything it ever gave away. ``commits``
counts transactions: with WAL and synchronous=FULL each one is one fsync of the WAL.

Checkpoints (copying the WAL into the database file: a few MB written and fsynced) are not left
to the commit that happens to cross SQLite's threshold, which would stall that step of a payment:
`checkpoint()` runs them from the node's ticker, on a connection of its own in a worker thread.
SQLite still checkpoints inline past AUTOCHECKPOINT_PAGES, should the ticker fall behind.

Private keys are never stored here: they are re-derived from the node seed (keys.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from gateway.durable_db import open_durable
from gateway.ln.channel.channel import Channel
from gateway.ln.errors import ChannelStoreError
from gateway.ln.node.channel_doc import channel_doc_json, channel_from_doc, pending_blob
from gateway.ln.node.keys import NodeKeys
from gateway.ln.node.switch import Invoice, Payment, Switch, link_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channels (id BLOB PRIMARY KEY, state INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invoices (hash BLOB PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (hash BLOB PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (key BLOB PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channel_blobs (
    channel BLOB NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (channel, key)
);
"""


AUTOCHECKPOINT_PAGES = 16384  # 64 MB of WAL: only if the ticker's checkpoints fall behind


class Store:
    def __init__(self, path: Path, keys: NodeKeys) -> None:
        self.path = path
        self.keys = keys
        self.commits = 0
        self.dirty_channels: set[bytes] = set()
        self._blobs: dict[bytes, set[bytes]] = {}  # channel id -> keys of its stored blobs
        self._pending: dict[bytes, tuple[bytes, bytes]] = {}  # channel id -> its queue's blob
        self.db = open_durable(path, SCHEMA, ChannelStoreError)
        self._checkpoint_lock = threading.Lock()
        self._checkpointer: sqlite3.Connection | None = None
        self._closed = False
        try:
            self.db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            row = self.db.execute("SELECT value FROM meta WHERE key='node_id'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ChannelStoreError(f"{path}: {exc}") from exc
        if row is None:
            self.set_meta("node_id", keys.node_id.hex())
        elif json.loads(row[0]) != keys.node_id.hex():
            raise ChannelStoreError(f"{path} belongs to node {row[0][:16]}, not this seed")

    def close(self) -> None:
        with self._checkpoint_lock:
            self._closed = True
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        self.db.close()

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file (PASSIVE: it never waits for, nor
        blocks, a commit). Thread-safe: the node runs it in a worker thread."""
        with self._checkpoint_lock:
            if self._closed:
                return
            try:
                if self._checkpointer is None:
                    self._checkpointer = sqlite3.connect(
                        self.path, isolation_level=None, check_same_thread=False
                    )
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                raise ChannelStoreError(f"{self.path}: checkpoint failed: {exc}") from exc

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def mark(self, ch: Channel) -> None:
        """The channel persistence hook: remember to write it in the next commit."""
        self.dirty_channels.add(ch.channel_id)

    def load(self, switch: Switch) -> None:
        blobs: dict[bytes, dict[bytes, bytes]] = {}
        for cid, key, data in self.db.execute("SELECT channel, key, data FROM channel_blobs"):
            blobs.setdefault(cid, {})[key] = data
        for cid, doc in self.db.execute("SELECT id, doc FROM channels"):
            ch = channel_from_doc(json.loads(doc), self.keys, blobs.get(cid, {}))
            ch.on_persist = self.mark
            switch.channels[ch.channel_id] = ch
            self._blobs[cid] = set(blobs.get(cid, {}))
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
            written = {
                cid: self._write_channel(switch.channels[cid]) for cid in self.dirty_channels
            }
            # a burst of payments dirties thousands of records: one statement per table
            upserts: dict[str, list[tuple[bytes, str]]] = {}
            deletes: dict[str, list[tuple[bytes]]] = {}
            for table, key in switch.dirty:
                doc = self._record(switch, table, key)
                if doc is None:
                    deletes.setdefault(table, []).append((key,))
                else:
                    upserts.setdefault(table, []).append((key, doc))
            for table, rows in deletes.items():
                db.executemany(f"DELETE FROM {table} WHERE {_KEY[table]} = ?", rows)
            for table, pairs in upserts.items():
                db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", pairs)
            db.execute("COMMIT")
        except Exception as exc:  # an encoding error must not leave a transaction open either
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise ChannelStoreError(f"commit failed: {exc!r}") from exc
        for cid, (stored, pending) in written.items():
            self._blobs[cid], self._pending[cid] = stored, pending
        self.dirty_channels.clear()
        switch.dirty.clear()
        self.commits += 1
        return 1

    def _write_channel(self, ch: Channel) -> tuple[set[bytes], tuple[bytes, bytes]]:
        """Write the channel's document, insert the blobs it names that are not stored yet and
        delete those it no longer names; returns what is stored after this transaction."""
        cid = ch.channel_id
        pending = pending_blob(ch, self._pending.get(cid))
        doc, blobs = channel_doc_json(ch, pending)
        stored = self._blobs.get(cid, set())
        for key, blob in blobs.items():
            if key not in stored:
                self.db.execute(
                    "INSERT OR REPLACE INTO channel_blobs VALUES (?, ?, ?)", (cid, key, blob)
                )
        for key in stored - blobs.keys():
            self.db.execute("DELETE FROM channel_blobs WHERE channel = ? AND key = ?", (cid, key))
        # in place (one page); a new channel's first write inserts its row
        state = int(ch.state)
        if cid not in self._blobs or not self.db.execute(_UPDATE, (state, doc, cid)).rowcount:
            self.db.execute("INSERT OR REPLACE INTO channels VALUES (?, ?, ?)", (cid, state, doc))
        return set(blobs), pending

    @staticmethod
    def _record(switch: Switch, table: str, key: bytes) -> str | None:
        if table == "invoices":
            inv = switch.invoices.get(key)
            if inv is None:
                return None
            # written for every invoice issued and paid: formatted directly (ints and hex only)
            return (
                f'{{"hash": "{key.hex()}", "preimage": "{inv.preimage.hex()}", '
                f'"amount": {int(inv.amount_msat)}, "cltv": {int(inv.min_final_cltv)}, '
                f'"paid": {"true" if inv.paid else "false"}, '
                f'"secret": "{inv.payment_secret.hex()}", "expires": {int(inv.expires_at)}}}'
            )
        if table == "payments":
            pay = switch.payments.get(key)
            if pay is None:
                return None
            return (
                f'{{"hash": "{key.hex()}", "amount": {int(pay.amount_msat)}, '
                f'"fee": {int(pay.fee_msat)}, "status": {_json_str(pay.status)}, '
                f'"preimage": "{pay.preimage.hex()}", "reason": {_json_str(pay.reason)}}}'
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


_UPDATE = "UPDATE channels SET state = ?, doc = ? WHERE id = ?"
_KEY = {"invoices": "hash", "payments": "hash", "links": "key"}
_PLAIN = {"": '""', "pending": '"pending"', "succeeded": '"succeeded"', "failed": '"failed"'}


def _json_str(text: str) -> str:
    """`json.dumps(text)`, without the call for the strings of nearly every record."""
    return _PLAIN.get(text) or json.dumps(text)
