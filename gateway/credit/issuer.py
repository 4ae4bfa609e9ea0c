"""Issue credit tokens (sgcore.token) for meters once a payment has settled.

Each token is recorded in SQLite before it is signed and handed out, keyed by the payment that
bought it, so a payment can never yield two tokens (asking again returns the same bytes), and
token ids per meter only ever grow. The site key signs; meters know its public key from provisioning.
"""

from __future__ import annotations

import time
from pathlib import Path

from gateway.crypto import SiteKey
from gateway.durable_db import open_durable
from gateway.errors import GatewayError
from sgcore import token as tk

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    meter_id   BLOB NOT NULL,
    token_id   INTEGER NOT NULL,
    payment    BLOB NOT NULL UNIQUE,  -- payment hash (or another unique reason) that bought it
    kind       INTEGER NOT NULL,
    amount_wh  INTEGER NOT NULL,
    expiry     INTEGER NOT NULL,
    issued_at  REAL NOT NULL,
    token      BLOB NOT NULL,
    PRIMARY KEY (meter_id, token_id)
);
"""


class IssuerError(GatewayError):
    pass


class TokenIssuer:
    def __init__(self, key: SiteKey, db_path: Path) -> None:
        self._key = key
        self._key_id = tk.key_id(key.pubkey)
        self._db = open_durable(db_path, _SCHEMA, IssuerError)

    def close(self) -> None:
        self._db.close()

    def _issue(self, t: tk.Token, payment: bytes) -> bytes:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT token, meter_id, kind, amount_wh FROM tokens WHERE payment = ?", (payment,)
            ).fetchone()
            if row is not None:
                self._db.execute("COMMIT")
                if (bytes(row[1]), row[2], row[3]) != (t.meter_id, t.kind, t.amount_wh):
                    raise IssuerError("this payment already bought a different token")
                return bytes(row[0])  # idempotent: the same payment gets the same token
            (last,) = self._db.execute(
                "SELECT COALESCE(MAX(token_id), 0) FROM tokens WHERE meter_id = ?", (t.meter_id,)
            ).fetchone()
            t.token_id = last + 1
            body = tk.encode_body(t)
            token = body + self._key.sign_digest(tk.digest(body))
            self._db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    t.meter_id,
                    t.token_id,
                    payment,
                    t.kind,
                    t.amount_wh,
                    t.expiry,
                    time.time(),
                    token,
                ),
            )
            self._db.execute("COMMIT")  # durable before anyone can see the token
            return token
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def energy(self, meter_id: bytes, wh: int, expiry: int, payment: bytes) -> bytes:
        """A token for `wh` of energy, valid until `expiry` (unix s)."""
        return self._issue(
            tk.Token(tk.KIND_ENERGY, meter_id, 0, expiry, self._key_id, amount_wh=wh), payment
        )

    def window(
        self, meter_id: bytes, start: int, end: int, cap_w: int, expiry: int, payment: bytes
    ) -> bytes:
        """A token for a paid time window [start, end) with a power cap (0 = none)."""
        t = tk.Token(
            tk.KIND_WINDOW,
            meter_id,
            0,
            expiry,
            self._key_id,
            window_start=start,
            window_end=end,
            power_cap_w=cap_w,
        )
        return self._issue(t, payment)

    def key_change(self, meter_id: bytes, new_pubkey: bytes, expiry: int, reason: bytes) -> bytes:
        """Tell a meter to trust `new_pubkey` from now on (signed by the current key)."""
        t = tk.Token(
            tk.KIND_KEY_CHANGE, meter_id, 0, expiry, self._key_id, new_issuer_key=new_pubkey
        )
        return self._issue(t, reason)

    def issued(self, meter_id: bytes) -> list[tuple[int, int, int]]:
        """(token_id, kind, amount_wh) of every token issued to a meter."""
        rows = self._db.execute(
            "SELECT token_id, kind, amount_wh FROM tokens WHERE meter_id = ? ORDER BY token_id",
            (meter_id,),
        )
        return [tuple(r) for r in rows]
