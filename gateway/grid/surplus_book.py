"""Durable records of the long side of imbalance settlement (docs/gateway.md), in SQLite (WAL,
synchronous=FULL): everything is on disk before the message or payment it stands for goes out.

Node side, `SurplusBook` (state/surplus.sqlite3):

* `sales`: every receipt the node issued, with its window and energy, written before the receipt
  is committed by the channel node, so no receipt that can be paid is missing from it (what the
  node sold in a period is the paid ones among them);
* `claims`: one row per meter and period the node asks the POD to pay, with the receipt and the
  meter's records, written before the first `sg_surplus_claim` goes out; a restart asks again
  with the same bytes: asking -> paid | refused | expired;
* `cursor`: per meter, the end of the last period examined (a period is examined once).

POD side, `PodPurchases` (state/pod_surplus.sqlite3): one row per meter and period it buys,
written before it pays: paying -> paid | failed (a failed payment is retried on the next ask).
Each row keeps the seq range of the meter records it paid between; a claim whose range overlaps
a bought one is refused, so no Wh of a meter's export counter is paid twice, even when a meter
sends two records for one interval (a clock set back).
Rows older than the oldest period still claimable are pruned, so both files stay bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gateway import clock
from gateway.durable_db import open_durable
from gateway.ln.codec.receipt import EnergyMemo

_NODE_SCHEMA = """
CREATE TABLE IF NOT EXISTS sales (
    payment_hash BLOB PRIMARY KEY,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    wh INTEGER NOT NULL,               -- the memo's energy, rounded up (a sale is never understated)
    kind TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sales_end ON sales ("end");
CREATE TABLE IF NOT EXISTS claims (
    request_id BLOB PRIMARY KEY,
    meter_id BLOB NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    exported_wh INTEGER NOT NULL, sold_wh INTEGER NOT NULL, wh INTEGER NOT NULL,
    amount_msat INTEGER NOT NULL,
    payment_hash BLOB NOT NULL,
    invoice TEXT NOT NULL,
    first BLOB NOT NULL, last BLOB NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    sends INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursor (
    meter_id BLOB PRIMARY KEY,
    period_end INTEGER NOT NULL,       -- the end of the last period examined
    last_seq INTEGER NOT NULL DEFAULT 0 -- the last record a claim used: the next claim starts there
) WITHOUT ROWID;
"""

_POD_SCHEMA = """
CREATE TABLE IF NOT EXISTS bought (
    meter_id BLOB NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    request_id BLOB NOT NULL,
    node_id BLOB NOT NULL,
    wh INTEGER NOT NULL, amount_msat INTEGER NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, -- the meter records it paid between
    payment_hash BLOB NOT NULL UNIQUE,
    invoice TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (meter_id, start)
) WITHOUT ROWID;
"""


def sale_wh(memo: EnergyMemo) -> int:
    """Whole Wh a memo sells, rounded up: what the node sold is never understated."""
    return int(math.ceil(memo.energy_kwh * 1000 - 1e-6))


@dataclass(frozen=True)
class Sale:
    payment_hash: bytes
    start: int
    end: int
    wh: int


@dataclass(frozen=True)
class ClaimRow:
    request_id: bytes
    meter_id: bytes
    start: int
    end: int
    exported_wh: int
    sold_wh: int
    wh: int
    amount_msat: int
    payment_hash: bytes
    invoice: str
    first: bytes
    last: bytes
    status: str
    reason: str
    sends: int


_CLAIM_COLS = (
    'request_id, meter_id, start, "end", exported_wh, sold_wh, wh, amount_msat, payment_hash, '
    "invoice, first, last, status, reason, sends"
)


class SurplusBook:
    def __init__(self, path: Path) -> None:
        self._db = open_durable(path, _NODE_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def record_sale(self, payment_hash: bytes, memo: EnergyMemo) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO sales VALUES (?,?,?,?,?,?)",
            (payment_hash, memo.start, memo.end, sale_wh(memo), memo.kind or "", clock.now()),
        )

    def sales_overlapping(self, start: int, end: int) -> list[Sale]:
        rows = self._db.execute(
            'SELECT payment_hash, start, "end", wh FROM sales WHERE "end" > ? AND start < ?',
            (start, end),
        )
        return [Sale(bytes(h), s, e, w) for h, s, e, w in rows]

    def cursor(self, meter_id: bytes) -> tuple[int, int] | None:
        """(end of the last period examined, seq of the last record a claim used)."""
        row = self._db.execute(
            "SELECT period_end, last_seq FROM cursor WHERE meter_id=?", (meter_id,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def advance(
        self, meter_id: bytes, period_end: int, claim: ClaimRow | None = None, last_seq: int = 0
    ) -> None:
        """Move the meter's cursor past a period, adding its claim (if any) in the same
        transaction: a period is either not examined yet or examined with its claim on disk.
        `last_seq`: the claim's last record (the next claim's records start there)."""
        now = clock.now()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if claim is not None:
                c = claim
                self._db.execute(
                    f"INSERT OR IGNORE INTO claims ({_CLAIM_COLS}, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (c.request_id, c.meter_id, c.start, c.end, c.exported_wh, c.sold_wh, c.wh,
                     c.amount_msat, c.payment_hash, c.invoice, c.first, c.last, c.status,
                     c.reason, c.sends, now, now),
                )  # fmt: skip
            self._db.execute(
                "INSERT INTO cursor VALUES (?,?,?) ON CONFLICT(meter_id) DO UPDATE SET "
                "period_end=excluded.period_end, last_seq=max(last_seq, excluded.last_seq) "
                "WHERE excluded.period_end > period_end",
                (meter_id, period_end, last_seq),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _claim(self, r: tuple) -> ClaimRow:
        return ClaimRow(bytes(r[0]), bytes(r[1]), r[2], r[3], r[4], r[5], r[6], r[7],
                        bytes(r[8]), r[9], bytes(r[10]), bytes(r[11]), r[12], r[13],
                        r[14])  # fmt: skip

    def claims(self, *statuses: str) -> list[ClaimRow]:
        where = f"WHERE status IN ({','.join('?' * len(statuses))})" if statuses else ""
        rows = self._db.execute(f"SELECT {_CLAIM_COLS} FROM claims {where} ORDER BY start",
                                statuses)  # fmt: skip
        return [self._claim(r) for r in rows]

    def set_claim(self, request_id: bytes, status: str, reason: str = "") -> None:
        self._db.execute(
            "UPDATE claims SET status=?, reason=?, updated_at=? WHERE request_id=?",
            (status, reason, clock.now(), request_id),
        )

    def count_send(self, request_id: bytes) -> None:
        self._db.execute("UPDATE claims SET sends=sends+1 WHERE request_id=?", (request_id,))

    def prune(self, before: int) -> None:
        """Forget sales and finished claims of periods that ended before `before`."""
        self._db.execute('DELETE FROM sales WHERE "end" < ?', (before,))
        self._db.execute("DELETE FROM claims WHERE \"end\" < ? AND status != 'asking'", (before,))


@dataclass(frozen=True)
class Purchase:
    meter_id: bytes
    start: int
    end: int
    request_id: bytes
    node_id: bytes
    wh: int
    amount_msat: int
    first_seq: int
    last_seq: int
    payment_hash: bytes
    invoice: str
    status: str
    reason: str


_BOUGHT_COLS = (
    'meter_id, start, "end", request_id, node_id, wh, amount_msat, first_seq, last_seq, '
    "payment_hash, invoice, status, reason"
)


class PodPurchases:
    def __init__(self, path: Path) -> None:
        self._db = open_durable(path, _POD_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _row(self, r: tuple) -> Purchase:
        return Purchase(bytes(r[0]), r[1], r[2], bytes(r[3]), bytes(r[4]), r[5], r[6], r[7],
                        r[8], bytes(r[9]), r[10], r[11], r[12])  # fmt: skip

    def add(self, p: Purchase) -> bool:
        """Note a purchase about to be paid (durable on return). False: the period of that meter
        (or that payment hash) is bought already."""
        now = clock.now()
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO bought ({_BOUGHT_COLS}, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (p.meter_id, p.start, p.end, p.request_id, p.node_id, p.wh, p.amount_msat,
             p.first_seq, p.last_seq, p.payment_hash, p.invoice, p.status, p.reason, now, now),
        )  # fmt: skip
        return cur.rowcount == 1

    def get(self, meter_id: bytes, start: int) -> Purchase | None:
        r = self._db.execute(
            f"SELECT {_BOUGHT_COLS} FROM bought WHERE meter_id=? AND start=?", (meter_id, start)
        ).fetchone()
        return self._row(r) if r else None

    def overlapping(self, meter_id: bytes, first_seq: int, last_seq: int) -> Purchase | None:
        """A purchase of this meter paid between records that overlap (first_seq, last_seq):
        paying both would pay some of the meter's export twice. Sharing an end is fine."""
        r = self._db.execute(
            f"SELECT {_BOUGHT_COLS} FROM bought WHERE meter_id=? AND first_seq < ? "
            "AND ? < last_seq LIMIT 1",
            (meter_id, last_seq, first_seq),
        ).fetchone()
        return self._row(r) if r else None

    def all(self, *statuses: str) -> list[Purchase]:
        where = f"WHERE status IN ({','.join('?' * len(statuses))})" if statuses else ""
        rows = self._db.execute(f"SELECT {_BOUGHT_COLS} FROM bought {where} ORDER BY start",
                                statuses)  # fmt: skip
        return [self._row(r) for r in rows]

    def set_status(self, meter_id: bytes, start: int, status: str, reason: str = "") -> None:
        self._db.execute(
            "UPDATE bought SET status=?, reason=?, updated_at=? WHERE meter_id=? AND start=?",
            (status, reason, clock.now(), meter_id, start),
        )

    def prune(self, before: int) -> None:
        """Forget purchases of periods that ended before `before` (older than any claim that
        is still accepted: they can never be asked for again)."""
        self._db.execute("DELETE FROM bought WHERE \"end\" < ? AND status != 'paying'", (before,))
