"""`MemoryLedger`'s rules over a SQLite file that several node processes share (tests, demos).

Every call runs in one IMMEDIATE transaction: load the state, apply, save. The real ledger node
(`sgrid ledger run`, adapted by ledger_http.py) replaces it in production.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.ln.errors import LedgerPortError
from gateway.ln.node.ledger_port import ChannelView, MemoryLedger


class FileLedger:
    def __init__(self, path: Path, chain: str = "file-ledger") -> None:
        self.path = path
        self.chain = chain
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, doc TEXT)")

    def _load(self) -> MemoryLedger:
        row = self.db.execute("SELECT doc FROM ledger WHERE id = 1").fetchone()
        if row is None:
            return MemoryLedger(chain=self.chain)
        d = json.loads(row[0])
        return MemoryLedger(
            chain=d["chain"],
            accounts=d["accounts"],
            channels={k: ChannelView(**v) for k, v in d["channels"].items()},
            seen={bytes.fromhex(x) for x in d["seen"]},
            tip=d["tip"],
        )

    def _save(self, led: MemoryLedger) -> None:
        doc = {
            "chain": led.chain,
            "accounts": led.accounts,
            "channels": {k: asdict(v) for k, v in led.channels.items()},
            "seen": sorted(x.hex() for x in led.seen),
            "tip": led.tip,
        }
        self.db.execute("INSERT OR REPLACE INTO ledger VALUES (1, ?)", (json.dumps(doc),))

    def _tx(self, fn: Any) -> Any:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            led = self._load()
            out = fn(led)
            self._save(led)
            self.db.execute("COMMIT")
            return out
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def height(self) -> int:
        return self._load().tip

    def mine(self, blocks: int = 1) -> None:
        self._tx(lambda led: led.mine(blocks))

    def deposit(self, account: bytes, amount: int) -> None:
        self._tx(lambda led: led.deposit(account, amount))

    def balance(self, account: bytes) -> int:
        return self._load().balance(account)

    def channel(self, channel_id: bytes) -> ChannelView | None:
        return self._load().channel(channel_id)

    def submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        try:
            self._tx(lambda led: led.submit(body, sigs))
        except sqlite3.DatabaseError as exc:
            raise LedgerPortError("unavailable", str(exc)) from exc
