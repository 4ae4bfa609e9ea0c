"""`MemoryLedger` (the real ledger's rules) over a SQLite file that several node processes share (tests, demos).

Every call runs in one IMMEDIATE transaction: load the state, apply, save. The real ledger node
(`sgrid ledger run`, adapted by ledger_http.py) replaces it in production. Thread-safe: the node
reads the ledger in worker threads (its watch, gossip), one call at a time per FileLedger.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.ledger.state import Channel, Participant
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.ledger_port import ChannelView, MemoryLedger, Signed


class FileLedger:
    def __init__(self, path: Path, chain: str = "file-ledger") -> None:
        self.path = path
        self.chain = chain
        # one connection, any thread: the lock keeps its calls (and transactions) apart
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self._lock = threading.RLock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, doc TEXT)")

    def _load(self) -> MemoryLedger:
        with self._lock:
            row = self.db.execute("SELECT doc FROM ledger WHERE id = 1").fetchone()
        led = MemoryLedger(chain=self.chain)
        if row is None:
            return led
        d = json.loads(row[0])
        st = led.state
        st.participants.update({k: Participant(**v) for k, v in d["participants"].items()})
        st.balances.update(d["balances"])
        st.channels = {k: Channel(**v) for k, v in d["channels"].items()}
        st.tx_ids = set(d["tx_ids"])
        st.deposited, st.withdrawn, led.tip = d["deposited"], d["withdrawn"], d["tip"]
        return led

    def _save(self, led: MemoryLedger) -> None:
        st = led.state
        doc = {
            "participants": {k: asdict(v) for k, v in st.participants.items()},
            "balances": st.balances,
            "channels": {k: asdict(v) for k, v in st.channels.items()},
            "tx_ids": sorted(st.tx_ids),
            "deposited": st.deposited,
            "withdrawn": st.withdrawn,
            "tip": led.tip,
        }
        self.db.execute("INSERT OR REPLACE INTO ledger VALUES (1, ?)", (json.dumps(doc),))

    def _tx(self, fn: Any) -> Any:
        with self._lock:
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
        (refused,) = self.submit_many([(body, sigs)])
        if refused is not None:
            raise refused

    def submit_many(self, txs: list[Signed]) -> list[LedgerPortError | None]:
        try:
            out: list[LedgerPortError | None] = self._tx(lambda led: led.submit_many(txs))
        except sqlite3.DatabaseError as exc:
            return [LedgerPortError("unavailable", str(exc)) for _ in txs]
        return out
