"""The replicated log's transaction entries: a submit call's txs as one etcd value (JSON list
of their wire form, split only past MAX_ENTRY_BYTES), and reading one back (pure but for the
entry keys' randomness)."""

from __future__ import annotations

import json
import os

from gateway.ledger import txs
from gateway.ledger.errors import TxRejected
from gateway.ledger.txs import Tx

MAX_ENTRY_BYTES = 512 * 1024  # one log entry's JSON (etcd refuses requests over 1.5 MiB)


def log_entries(base: bytes, batch: list[Tx]) -> list[tuple[bytes, bytes, list[Tx]]]:
    """(key, value, its txs) of the log entries holding `batch`, in order: one unless it is very
    large. The value is the JSON list of the txs' `wire_json`."""
    entries: list[tuple[bytes, bytes, list[Tx]]] = []
    chunk: list[Tx] = []
    size = 0
    for tx in batch:
        wire = tx.wire_json
        if chunk and size + len(wire) + 1 > MAX_ENTRY_BYTES:
            entries.append(_entry(base, chunk))
            chunk, size = [], 0
        chunk.append(tx)
        size += len(wire) + 1
    if chunk:
        entries.append(_entry(base, chunk))
    return entries


def _entry(base: bytes, chunk: list[Tx]) -> tuple[bytes, bytes, list[Tx]]:
    key = base + b"txs/" + os.urandom(16).hex().encode()
    return key, ("[" + ",".join(t.wire_json for t in chunk) + "]").encode(), chunk


def read_entry(name: str, value: bytes) -> list[Tx]:
    """The transactions of log entry `name`; what cannot be read becomes a tx every replica
    refuses alike (kind "unreadable"), so an entry never stops the log."""
    try:
        raw = json.loads(value)
    except ValueError:
        raw = None
    if name.startswith("tx/"):  # the former layout: one tx per key
        raw = [raw]
    if not isinstance(raw, list):
        return [Tx({"kind": "unreadable", "log_key": name}, {})]
    out = []
    for index, item in enumerate(raw):
        try:
            out.append(txs.from_json(item))
        except TxRejected:
            out.append(Tx({"kind": "unreadable", "log_key": name, "index": index}, {}))
    return out
