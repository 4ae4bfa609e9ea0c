"""`sg_receipt_offer`: a producer's energy receipt offered to channel neighbours (seed 000's L3).

BOLT-1 message type 33025 (odd: a node that does not know it ignores it). docs/channels.md,
"Receipts between nodes", is the spec; this module is the one copy of the format:

| field | type | limit |
|---|---|---|
| `payment_hash` | bytes32 | the receipt's payment hash: the offer's identity (duplicates dropped) |
| `hops_left` | u8 | <= MAX_HOPS; a node forwards only while it is > 0, decremented |
| `path` | varbytes | 33-byte node ids the offer has visited, issuer first, <= MAX_HOPS + 1 |
| `invoice` | varbytes | the BOLT-11 receipt (ASCII), <= MAX_INVOICE bytes |
| `memo` | varbytes | the memo JSON for an `h` receipt, else empty, <= MAX_MEMO bytes |

Pure: encode, decode, and the checks every receiver makes before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ln.codec.wire import TABLE, Message
from gateway.ln.errors import WireError

TYPE = 33025
NAME = "sg_receipt_offer"
MAX_HOPS = 8
MAX_INVOICE = 2048
MAX_MEMO = 8192
NODE_ID_LEN = 33

if NAME not in TABLE.by_name:
    TABLE.register(
        NAME,
        TYPE,
        [
            ("payment_hash", "bytes32"),
            ("hops_left", "u8"),
            ("path", "varbytes"),
            ("invoice", "varbytes"),
            ("memo", "varbytes"),
        ],
    )


@dataclass(frozen=True)
class ReceiptOffer:
    payment_hash: bytes
    hops_left: int
    path: tuple[bytes, ...]  # node ids visited, the issuer first
    invoice: str
    memo: str | None

    def forwarded_by(self, node_id: bytes) -> ReceiptOffer:
        """The offer as `node_id` passes it on: one hop less, itself on the path."""
        return ReceiptOffer(
            self.payment_hash, self.hops_left - 1, (*self.path, node_id), self.invoice, self.memo
        )


def encode(offer: ReceiptOffer) -> bytes:
    check(offer)
    return TABLE.encode(
        NAME,
        payment_hash=offer.payment_hash,
        hops_left=offer.hops_left,
        path=b"".join(offer.path),
        invoice=offer.invoice.encode("ascii"),
        memo=(offer.memo or "").encode("utf-8"),
    )


def from_message(msg: Message) -> ReceiptOffer:
    """The offer carried by a decoded `sg_receipt_offer`; raises WireError if out of limits."""
    path = msg["path"]
    if len(path) % NODE_ID_LEN:
        raise WireError(f"{NAME}.path is not a list of 33-byte node ids")
    try:
        invoice = msg["invoice"].decode("ascii")
        memo = msg["memo"].decode("utf-8") or None
    except UnicodeDecodeError as exc:
        raise WireError(f"{NAME}: invoice must be ASCII and memo UTF-8") from exc
    offer = ReceiptOffer(
        msg["payment_hash"],
        msg["hops_left"],
        tuple(path[i : i + NODE_ID_LEN] for i in range(0, len(path), NODE_ID_LEN)),
        invoice,
        memo,
    )
    check(offer)
    return offer


def check(offer: ReceiptOffer) -> None:
    if len(offer.payment_hash) != 32:
        raise WireError(f"{NAME}.payment_hash must be 32 bytes")
    if not 0 <= offer.hops_left <= MAX_HOPS:
        raise WireError(f"{NAME}.hops_left must be 0..{MAX_HOPS}")
    if not 1 <= len(offer.path) <= MAX_HOPS + 1:
        raise WireError(f"{NAME}.path must hold 1..{MAX_HOPS + 1} node ids")
    if any(len(p) != NODE_ID_LEN for p in offer.path):
        raise WireError(f"{NAME}.path is not a list of 33-byte node ids")
    if len(set(offer.path)) != len(offer.path):
        raise WireError(f"{NAME}.path visits a node twice (a loop)")
    if not 0 < len(offer.invoice) <= MAX_INVOICE:
        raise WireError(f"{NAME}.invoice must be 1..{MAX_INVOICE} bytes")
    if offer.memo is not None and len(offer.memo.encode("utf-8")) > MAX_MEMO:
        raise WireError(f"{NAME}.memo must be at most {MAX_MEMO} bytes")
