"""From a settled payment to an accepted credit token (pure logic over the book and the issuer).

The service calls `purchase` before a receipt is paid, `settle` when the payment's outcome is
known, `reconcile` on start and every second (outcomes that arrived while nobody waited), `due`
to get the tokens to publish now, and `on_event` with each of the meter's token events.

Issuing, per meter, is one token at a time too: while a token waits for the meter's answer, the
payments settled meanwhile stay `paid`, and once it is answered one token credits them all (up
to MAX_BATCH; credit_book.py). A meter that verifies a token slower than its receipts are paid
(an ESP32 checks a secp256k1 signature in ~a second; a busy bench slower) is not buried under a
backlog that grows all day: it gets fewer tokens, each for everything paid so far.

Delivery, per meter, is one token at a time in token-id order: the oldest issued token is sent
(and re-sent every `resend_s`) until the meter answers it definitively. Because nothing newer is
sent before an answer, the meter's `replay` answer for a token means that very token was redeemed
before (its `accepted` event was lost): it counts as accepted. `clock_unset` and any other answer
are not definitive: the token goes again (the gateway sets the meter's clock when it comes online).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from gateway.credit.issuer import TokenIssuer
from gateway.grid.credit_book import CreditBook, CreditRow
from gateway.ln.codec.receipt import EnergyMemo
from sgcore import token as tk

log = logging.getLogger(__name__)

ACCEPTED = ("accepted", "replay")
REJECTED = ("malformed", "wrong_meter", "unknown_issuer", "expired", "bad_signature",
            "state_damaged")  # fmt: skip

MAX_BATCH = 64  # payments one token credits at most
# payment hash -> ("succeeded" | "failed" | "pending", reason), or None if the node has none
Lookup = Callable[[bytes], tuple[str, str] | None]


class CreditDesk:
    def __init__(
        self,
        book: CreditBook,
        issuer: TokenIssuer,
        token_expiry_s: int,
        resend_s: float,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.book = book
        self.issuer = issuer
        self.token_expiry_s = token_expiry_s
        self.resend_s = resend_s
        self._wall = wall
        self._mono = mono
        self._sent: dict[bytes, float] = {}  # payment hash -> when last published (monotonic)

    # --- payments ------------------------------------------------------------------------------

    def purchase(self, payment_hash: bytes, meter_id: bytes, memo: EnergyMemo, amount: int) -> None:
        """Before paying: the receipt, its meter and its energy are on disk once this returns."""
        if self.book.record(payment_hash, meter_id, memo, amount):
            log.info("paying %s for %s Wh to meter %s", payment_hash.hex()[:16],
                     memo.energy_kwh * 1000, meter_id.hex())  # fmt: skip

    def settle(self, payment_hash: bytes, status: str, reason: str = "") -> CreditRow | None:
        """The payment's outcome. Returns the issued row when this made a token."""
        row = self.book.get(payment_hash)
        if row is None or row.status not in ("paying", "paid"):
            return None
        if status == "failed":
            self.book.set_status(payment_hash, "failed", reason)
            log.info("payment %s failed (%s): no credit", payment_hash.hex()[:16], reason)
            return None
        if status != "succeeded":
            return None
        if row.status == "paying":
            self.book.set_status(payment_hash, "paid")
        self._issue(row.meter_id)
        got = self.book.get(payment_hash)
        return got if got is not None and got.status == "issued" else None

    def _issue(self, meter_id: bytes) -> bool:
        """The meter's next token, for every payment of it settled and not yet credited, unless
        one of its tokens still waits for an answer. True when a token was made."""
        if self.book.outstanding(meter_id):
            return False
        rows = self.book.paid_for(meter_id)[:MAX_BATCH]
        wh = sum(r.wh for r in rows)
        if wh <= 0:
            return False  # nothing (or less than 1 Wh) to credit
        hashes = [r.payment_hash for r in rows]
        # idempotent by what it credits: after a crash the same payments get the same bytes
        ref = (
            hashes[0]
            if len(hashes) == 1
            else hashlib.sha256(b"sg-credit-batch" + b"".join(hashes)).digest()
        )
        expiry = int(self._wall()) + self.token_expiry_s
        token = self.issuer.energy(meter_id, wh, expiry, ref)
        token_id = tk.decode(token)[0].token_id
        self.book.set_issued(hashes, token_id, token)
        log.info("token %d (%d Wh) issued to meter %s for %d payment(s) from %s", token_id, wh,
                 meter_id.hex(), len(hashes), hashes[0].hex()[:16])  # fmt: skip
        return True

    def reconcile(self, lookup: Lookup, startup: bool = False) -> int:
        """Settle rows whose payment ended while nobody waited; returns how many tokens it made.

        At start-up a `paying` row the node has never heard of was never sent (the node stores a
        payment before its first message leaves): it failed.
        """
        made = 0
        for row in self.book.in_status("paying"):
            outcome = lookup(row.payment_hash)
            if outcome is None:
                if startup:
                    self.book.set_status(row.payment_hash, "failed", "never sent")
                continue
            if self.settle(row.payment_hash, *outcome) is not None:
                made += 1
        for meter_id in sorted({r.meter_id for r in self.book.in_status("paid")}):
            made += self._issue(meter_id)
        return made

    # --- delivery ------------------------------------------------------------------------------

    def due(self, now_for: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """(meter id, token) to publish now: each meter's oldest unanswered token, if it is new,
        its resend time has come, or the meter is `now_for` (it just came online)."""
        for meter_id in sorted({r.meter_id for r in self.book.in_status("paid")}):
            self._issue(meter_id)  # the previous token was answered: the next one credits the rest
        now = self._mono()
        out: list[tuple[bytes, bytes]] = []
        seen: set[bytes] = set()
        for row in self.book.in_status("issued"):
            if row.meter_id in seen or row.token is None:
                continue
            seen.add(row.meter_id)
            last = self._sent.get(row.token)
            if last is None or now - last >= self.resend_s or row.meter_id == now_for:
                self._sent[row.token] = now
                self.book.count_send(row.payment_hash)
                out.append((row.meter_id, row.token))
        return out

    def on_event(self, meter_id: bytes, event: dict) -> bool:
        """A meter's event; True when it answered one of our tokens definitively."""
        if event.get("event") != "token":
            return False
        token_id, result = event.get("id"), event.get("result")
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            return False
        rows = self.book.for_token(meter_id, token_id)
        if not rows or rows[0].status != "issued":
            return False
        wh = sum(r.wh for r in rows)
        if result in ACCEPTED:
            self.book.set_token_status(meter_id, token_id, "accepted", str(result), at=self._wall())
            log.info("meter %s accepted token %d (%d Wh)", meter_id.hex(), token_id, wh)
        elif result in REJECTED:
            self.book.set_token_status(meter_id, token_id, "rejected", str(result))
            log.error("meter %s rejected token %d (%d Wh) for payment %s: %s", meter_id.hex(),
                      token_id, wh, rows[0].payment_hash.hex()[:16], result)  # fmt: skip
        else:
            return False  # not definitive: sent again at the next resend time
        self._sent.pop(rows[0].token or b"", None)
        return True
