"""The credit book: every receipt this node pays for its meter, from payment to the meter's answer.

One row per payment hash, in SQLite (WAL, synchronous=FULL), next to the token issuer's table:

    paying  -> paid -> issued -> accepted | rejected
           \\-> failed

A meter has at most one token awaiting its answer; payments settled meanwhile wait as `paid`
and the next token credits all of them (one token, several rows with its id): a meter that
verifies tokens slower than receipts are paid gets fewer, larger tokens, never less energy.

`paying` is written before the payment is sent, so after a crash the gateway knows what every
settled payment bought; `issued` holds the token bytes, so a restart re-sends the same token and
never makes a second one (docs/credit-tokens.md, "From payment to relay").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gateway import clock
from gateway.durable_db import open_durable
from gateway.ln.codec.receipt import EnergyMemo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credit (
    payment_hash BLOB PRIMARY KEY,     -- the token's payment reference
    meter_id     BLOB NOT NULL,
    wh           INTEGER NOT NULL,     -- energy credit bought
    window_start INTEGER NOT NULL,     -- the receipt's delivery window (for settlement)
    window_end   INTEGER NOT NULL,
    amount_msat  INTEGER NOT NULL,
    issuer_node  TEXT NOT NULL,        -- the memo's issuer grid node
    status       TEXT NOT NULL,
    token_id     INTEGER,
    token        BLOB,
    reason       TEXT NOT NULL DEFAULT '',
    sends        INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS credit_status ON credit (status, meter_id, token_id);
"""

OPEN = ("paying", "paid", "issued")


def credit_wh(memo: EnergyMemo) -> int:
    """Whole Wh a memo sells, rounded down: the meter never releases more than was paid."""
    return int(math.floor(memo.energy_kwh * 1000 + 1e-6))


@dataclass(frozen=True)
class CreditRow:
    payment_hash: bytes
    meter_id: bytes
    wh: int
    window_start: int
    window_end: int
    amount_msat: int
    issuer_node: str
    status: str
    token_id: int | None
    token: bytes | None
    reason: str
    sends: int
    created_at: float


_COLUMNS = (
    "payment_hash, meter_id, wh, window_start, window_end, amount_msat, issuer_node, status, "
    "token_id, token, reason, sends, created_at"
)


class CreditBook:
    def __init__(self, path: Path) -> None:
        self._db = open_durable(path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _row(self, r: tuple) -> CreditRow:
        token = bytes(r[9]) if r[9] is not None else None
        return CreditRow(
            bytes(r[0]), bytes(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], token, r[10],
            r[11], r[12],
        )  # fmt: skip

    def record(self, payment_hash: bytes, meter_id: bytes, memo: EnergyMemo, amount: int) -> bool:
        """Note a payment about to be sent (durable on return). False if it is already known."""
        now = clock.now()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO credit (payment_hash, meter_id, wh, window_start, window_end, "
            "amount_msat, issuer_node, status, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,'paying',?,?)",
            (
                payment_hash,
                meter_id,
                credit_wh(memo),
                memo.start,
                memo.end,
                amount,
                memo.node,
                now,
                now,
            ),
        )
        return cur.rowcount == 1

    def get(self, payment_hash: bytes) -> CreditRow | None:
        r = self._db.execute(
            f"SELECT {_COLUMNS} FROM credit WHERE payment_hash=?", (payment_hash,)
        ).fetchone()
        return self._row(r) if r else None

    def in_status(self, *statuses: str) -> list[CreditRow]:
        marks = ",".join("?" * len(statuses))
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM credit WHERE status IN ({marks}) "
            "ORDER BY meter_id, token_id, created_at",
            statuses,
        )
        return [self._row(r) for r in rows]

    def set_status(
        self, payment_hash: bytes, status: str, reason: str = "", at: float | None = None
    ) -> None:
        """`at`: when, on the meters' clock (the meter's answer is compared with its readings)."""
        self._db.execute(
            "UPDATE credit SET status=?, reason=?, updated_at=? WHERE payment_hash=?",
            (status, reason, clock.now() if at is None else at, payment_hash),
        )

    def set_issued(self, payment_hashes: list[bytes], token_id: int, token: bytes) -> None:
        """The rows `payment_hashes` are credited by one token (one statement: atomic)."""
        marks = ",".join("?" * len(payment_hashes))
        self._db.execute(
            "UPDATE credit SET status='issued', token_id=?, token=?, updated_at=? "
            f"WHERE payment_hash IN ({marks}) AND status IN ('paying', 'paid')",
            (token_id, token, clock.now(), *payment_hashes),
        )

    def set_token_status(
        self, meter_id: bytes, token_id: int, status: str, reason: str, at: float | None = None
    ) -> None:
        """Every row a token credits gets the meter's answer (`at`: on the meters' clock)."""
        self._db.execute(
            "UPDATE credit SET status=?, reason=?, updated_at=? WHERE meter_id=? AND token_id=?",
            (status, reason, clock.now() if at is None else at, meter_id, token_id),
        )

    def updated_at(self, payment_hash: bytes) -> float:
        row = self._db.execute(
            "SELECT updated_at FROM credit WHERE payment_hash=?", (payment_hash,)
        ).fetchone()
        return float(row[0]) if row else 0.0

    def count_send(self, payment_hash: bytes) -> None:
        self._db.execute("UPDATE credit SET sends=sends+1 WHERE payment_hash=?", (payment_hash,))

    def for_token(self, meter_id: bytes, token_id: int) -> list[CreditRow]:
        """The rows one token credits (several when payments were batched into it)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM credit WHERE meter_id=? AND token_id=? ORDER BY created_at",
            (meter_id, token_id),
        )
        return [self._row(r) for r in rows]

    def paid_for(self, meter_id: bytes) -> list[CreditRow]:
        """The meter's settled payments that no token credits yet, oldest first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM credit WHERE meter_id=? AND status='paid' "
            "ORDER BY created_at, payment_hash",
            (meter_id,),
        )
        return [self._row(r) for r in rows]

    def outstanding(self, meter_id: bytes) -> bool:
        """True while a token of this meter waits for the meter's answer."""
        return (
            self._db.execute(
                "SELECT 1 FROM credit WHERE meter_id=? AND status='issued' LIMIT 1", (meter_id,)
            ).fetchone()
            is not None
        )

    def all(self) -> list[CreditRow]:
        return [self._row(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM credit")]
