"""The channel node of a grid node: the ln Node plus what couples it to the meter.

Before a receipt is paid, the energy it buys is written to the credit book for this node's meter
(`on_purchase`); when the payment's outcome is known `on_outcome` is called, so the credit token
goes out at once. Offered receipts arriving from peers go to `on_offer` (gateway/grid/offers.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway import clock
from gateway.ln.codec import bolt11, energy_request, receipt, receipt_offer, surplus_claim
from gateway.ln.codec.wire import Message
from gateway.ln.errors import LnError, WireError
from gateway.ln.node.node import Node
from gateway.ln.node.peer import Peer

log = logging.getLogger(__name__)

OnPurchase = Callable[[bolt11.Invoice, receipt.EnergyMemo], None]
OnOutcome = Callable[[bytes], None]
OnOffer = Callable[[bytes, receipt_offer.ReceiptOffer], None]
OnRequest = Callable[[bytes, energy_request.EnergyRequest], None]
OnQuote = Callable[[bytes, energy_request.EnergyQuote], None]
OnIssued = Callable[[receipt.Receipt], None]
OnClaim = Callable[[bytes, surplus_claim.SurplusClaim], None]
OnAnswer = Callable[[bytes, surplus_claim.SurplusAnswer], None]


class GridNode(Node):
    on_purchase: OnPurchase | None = None
    on_outcome: OnOutcome | None = None
    on_offer: OnOffer | None = None
    on_energy_request: OnRequest | None = None
    on_energy_quote: OnQuote | None = None
    on_issued: OnIssued | None = None
    on_surplus_claim: OnClaim | None = None
    on_surplus_answer: OnAnswer | None = None
    bad_offers = 0

    def create_invoice(
        self,
        amount_msat: int,
        memo: receipt.EnergyMemo,
        now: int | None = None,
        commit: bool = True,
        settlement_expiry_s: int | None = None,
    ) -> receipt.Receipt:
        """A receipt, booked as this node's sale (`on_issued`, durable) before the channel node
        commits it: no receipt that can be paid is missing from the node's sales."""
        rec = super().create_invoice(amount_msat, memo, now, False, settlement_expiry_s)
        if self.on_issued is not None:
            self.on_issued(rec)
        if commit:
            self.commit()
        return rec

    def payment_outcome(self, payment_hash: bytes) -> tuple[str, str] | None:
        pay = self.switch.payments.get(payment_hash)
        return None if pay is None else (pay.status, pay.reason)

    async def pay_invoice(
        self, text: str, timeout: float = 30, memo_json: str | None = None, credit: bool = True
    ) -> dict[str, Any]:
        """Pay a receipt; with `credit` its energy is credited to this node's meter (the POD
        buying a node's surplus pays for energy already delivered: no credit)."""
        inv = bolt11.decode(text, description=memo_json)
        if credit and self.on_purchase is not None and not inv.is_expired(int(clock.now())):
            try:
                _, memo = receipt.read_receipt(text, memo_json)
            except LnError as exc:
                memo = None  # not an energy receipt (or an `h` one without its memo): no credit
                log.warning("paying %s without credit for the meter: %s",
                            inv.payment_hash.hex()[:16], exc)  # fmt: skip
            if memo is not None and inv.amount_msat is not None:
                self.on_purchase(inv, memo)  # durable before the payment can start
        try:
            return await super().pay_invoice(text, timeout)
        finally:
            if self.on_outcome is not None:
                try:
                    self.on_outcome(inv.payment_hash)
                except Exception:  # the payment's answer stands; the credit loop retries
                    log.exception("after payment %s", inv.payment_hash.hex()[:16])

    def _bad(self, peer: Peer, what: str, exc: Exception) -> None:
        self.bad_offers += 1
        if self.bad_offers <= 20 or self.bad_offers % 1000 == 0:  # rate-limited log
            log.warning("peer %s: bad %s (%d so far): %s", peer.short, what, self.bad_offers, exc)

    async def on_sg_receipt_offer(self, peer: Peer, msg: Message) -> None:
        try:
            offer = receipt_offer.from_message(msg)
        except WireError as exc:
            return self._bad(peer, "receipt offer", exc)
        if self.on_offer is not None:
            self.on_offer(peer.node_id, offer)

    async def on_sg_energy_request(self, peer: Peer, msg: Message) -> None:
        try:
            req = energy_request.request_from(msg)
        except WireError as exc:
            return self._bad(peer, "energy request", exc)
        if self.on_energy_request is not None:
            self.on_energy_request(peer.node_id, req)

    async def on_sg_energy_quote(self, peer: Peer, msg: Message) -> None:
        try:
            quote = energy_request.quote_from(msg)
        except WireError as exc:
            return self._bad(peer, "energy quote", exc)
        if self.on_energy_quote is not None:
            self.on_energy_quote(peer.node_id, quote)

    async def on_sg_surplus_claim(self, peer: Peer, msg: Message) -> None:
        try:
            claim = surplus_claim.claim_from(msg)
        except WireError as exc:
            return self._bad(peer, "surplus claim", exc)
        if self.on_surplus_claim is not None:
            self.on_surplus_claim(peer.node_id, claim)

    async def on_sg_surplus_answer(self, peer: Peer, msg: Message) -> None:
        try:
            answer = surplus_claim.answer_from(msg)
        except WireError as exc:
            return self._bad(peer, "surplus answer", exc)
        if self.on_surplus_answer is not None:
            self.on_surplus_answer(peer.node_id, answer)

    def send_raw(self, node_id: bytes, data: bytes) -> bool:
        peer = self.peers.get(node_id)
        if peer is None:
            return False
        peer.queue(data)
        peer.flush()
        return True

    def send_offer(self, offer: receipt_offer.ReceiptOffer, to: list[bytes]) -> int:
        """Queue the offer to each connected peer of `to`; returns how many got it."""
        data = receipt_offer.encode(offer)
        sent = 0
        for node_id in to:
            peer = self.peers.get(node_id)
            if peer is not None:
                peer.queue(data)
                peer.flush()
                sent += 1
        return sent
