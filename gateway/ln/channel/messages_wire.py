"""Our channel messages on the BOLT #1 table (custom types >= 32768, even: must be understood;
`sg_preimages` is odd: a hint that a peer not knowing it may ignore).

Each channel_msgs dataclass maps to one registered message; `to_wire`/`from_wire` convert.
`sg_preimages` carries its list as one varbytes field of MAX_PREIMAGES entries at most, each
the HTLC id (u64) and the preimage (32 bytes).

`sg_update_batch` may end in a TLV stream (BOLT #1: after the fields, a reader that knows no
record skips it): record 1 (odd) is the proposer's revocation hash for the commitment after the
proposed one (32 bytes), which lets the acceptor propose before the revoke (overlapping rounds).
An unknown odd record is skipped, an unknown even one, a record out of order or a wrong length is
a malformed message.
"""

from __future__ import annotations

from typing import Any

from gateway.ln.channel import messages as m
from gateway.ln.codec.wire import MAX_MESSAGE_LEN, TABLE, Message
from gateway.ln.errors import ProtocolViolation, WireError

_B32, _B33, _B64 = "bytes32", "bytes33", "bytes64"
CID = ("channel_id", _B32)
PREIMAGE_ENTRY = 8 + 32  # u64 htlc id + preimage
MAX_PREIMAGES = 1600  # entries per sg_preimages: 2 + 32 + 2 + 1600 * 40 = 64,036 bytes

SPECS: dict[str, tuple[int, list[tuple[str, str]]]] = {
    "sg_open_channel": (
        33000,
        [
            CID,
            ("nonce", "varbytes"),
            ("dispute_blocks", "u32"),
            ("amount0", "u64"),
            ("amount1", "u64"),
            ("funding_pub", _B33),
            ("rev_hash0", _B32),
            ("rev_hash1", _B32),
        ],
    ),
    "sg_accept_channel": (
        33002,
        [
            CID,
            ("funding_pub", _B33),
            ("rev_hash0", _B32),
            ("rev_hash1", _B32),
            ("sig", _B64),
            ("ledger_sig", _B64),
        ],
    ),
    "sg_funding_signed": (33004, [CID, ("sig", _B64), ("ledger_sig", _B64), ("funding_sig", _B64)]),
    "sg_channel_ready": (33006, [CID]),
    "sg_update_batch": (
        33008,
        [CID, ("number", "u64"), ("updates", "varbytes"), ("sig", _B64), ("ledger_sig", _B64)],
    ),
    "sg_ack_batch": (
        33010,
        [
            CID,
            ("number", "u64"),
            ("sig", _B64),
            ("ledger_sig", _B64),
            ("secret", _B32),
            ("next_hash", _B32),
        ],
    ),
    "sg_revoke": (33012, [CID, ("number", "u64"), ("secret", _B32), ("next_hash", _B32)]),
    "sg_reestablish": (
        33014,
        [CID, ("latest", "u64"), ("revoked_through_plus1", "u64"), ("last_secret", _B32)],
    ),
    "sg_shutdown": (33016, [CID]),
    "sg_closing_signed": (33018, [CID, ("balance0", "u64"), ("balance1", "u64"), ("sig", _B64)]),
    "sg_preimages": (33035, [CID, ("preimages", "varbytes")]),
    "sg_channel_announce": (33020, [CID, ("node_a", _B33), ("node_b", _B33)]),
    "sg_node_policy": (
        33022,
        [
            ("node", _B33),
            ("base_msat", "u64"),
            ("ppm", "u32"),
            ("cltv_delta", "u16"),
            ("sig", _B64),
        ],
    ),
}

for _name, (_num, _fields) in SPECS.items():
    if _name not in TABLE.by_name:
        TABLE.register(_name, _num, _fields)


NEXT_HASH_TLV = 1  # sg_update_batch's TLV record: the proposer's revocation hash for number + 1


def to_wire(msg: m.ChannelMsg) -> bytes:
    """Encode one channel message."""
    if isinstance(msg, m.UpdateBatch):
        raw = TABLE.encode(
            "sg_update_batch",
            channel_id=msg.channel_id,
            number=msg.number,
            updates=msg.updates,
            sig=msg.sig,
            ledger_sig=msg.ledger_sig,
        )
        if not msg.next_hash:
            return raw
        if len(msg.next_hash) != 32:
            raise WireError("sg_update_batch: next_hash must be 32 bytes")
        if len(raw) + 34 > MAX_MESSAGE_LEN:  # a batch near the limit goes without: the peer
            return raw  # waits for our revoke (it is sent again the same, byte for byte)
        return raw + bytes((NEXT_HASH_TLV, 32)) + msg.next_hash
    if isinstance(msg, m.AckBatch):
        return TABLE.encode(
            "sg_ack_batch",
            channel_id=msg.channel_id,
            number=msg.number,
            sig=msg.sig,
            ledger_sig=msg.ledger_sig,
            secret=msg.secret,
            next_hash=msg.next_hash,
        )
    if isinstance(msg, m.Revoke):
        return TABLE.encode(
            "sg_revoke",
            channel_id=msg.channel_id,
            number=msg.number,
            secret=msg.secret,
            next_hash=msg.next_hash,
        )
    if isinstance(msg, m.Reestablish):
        return TABLE.encode(
            "sg_reestablish",
            channel_id=msg.channel_id,
            latest=msg.latest,
            revoked_through_plus1=msg.revoked_through + 1,
            last_secret=msg.last_secret,
        )
    if isinstance(msg, m.Preimages):
        if len(msg.preimages) > MAX_PREIMAGES:
            raise WireError(f"sg_preimages: {len(msg.preimages)} entries > {MAX_PREIMAGES}")
        if any(len(pre) != 32 for _, pre in msg.preimages):
            raise WireError("sg_preimages: a preimage must be 32 bytes")
        try:
            entries = b"".join(i.to_bytes(8, "big") + pre for i, pre in msg.preimages)
        except OverflowError as exc:
            raise WireError("sg_preimages: an HTLC id does not fit u64") from exc
        return TABLE.encode("sg_preimages", channel_id=msg.channel_id, preimages=entries)
    if isinstance(msg, m.Shutdown):
        return TABLE.encode("sg_shutdown", channel_id=msg.channel_id)
    if isinstance(msg, m.ClosingSigned):
        return TABLE.encode(
            "sg_closing_signed",
            channel_id=msg.channel_id,
            balance0=msg.balances[0],
            balance1=msg.balances[1],
            sig=msg.sig,
        )
    if isinstance(msg, m.OpenChannel):
        return TABLE.encode(
            "sg_open_channel",
            channel_id=msg.channel_id,
            nonce=msg.nonce.encode(),
            dispute_blocks=msg.dispute_blocks,
            amount0=msg.amounts[0],
            amount1=msg.amounts[1],
            funding_pub=msg.funding_pub,
            rev_hash0=msg.rev_hashes[0],
            rev_hash1=msg.rev_hashes[1],
        )
    if isinstance(msg, m.AcceptChannel):
        return TABLE.encode(
            "sg_accept_channel",
            channel_id=msg.channel_id,
            funding_pub=msg.funding_pub,
            rev_hash0=msg.rev_hashes[0],
            rev_hash1=msg.rev_hashes[1],
            sig=msg.sig,
            ledger_sig=msg.ledger_sig,
        )
    raise ProtocolViolation(f"no wire form for {type(msg).__name__}")


def from_wire(msg: Message) -> Any:
    """The channel_msgs dataclass of a decoded message (or the raw Message for the others)."""
    f = msg.fields
    n = msg.name
    if n == "sg_update_batch":
        records = _tlv_records("sg_update_batch", msg.tail)
        next_hash = records.get(NEXT_HASH_TLV, b"")
        if next_hash and len(next_hash) != 32:
            raise WireError("sg_update_batch: next_hash record must be 32 bytes")
        return m.UpdateBatch(
            f["channel_id"], f["number"], f["updates"], f["sig"], f["ledger_sig"], next_hash
        )
    if n == "sg_ack_batch":
        return m.AckBatch(
            f["channel_id"], f["number"], f["sig"], f["ledger_sig"], f["secret"], f["next_hash"]
        )
    if n == "sg_revoke":
        return m.Revoke(f["channel_id"], f["number"], f["secret"], f["next_hash"])
    if n == "sg_reestablish":
        return m.Reestablish(
            f["channel_id"], f["latest"], f["revoked_through_plus1"] - 1, f["last_secret"]
        )
    if n == "sg_preimages":
        return m.Preimages(f["channel_id"], _preimage_entries(f["preimages"]))
    if n == "sg_shutdown":
        return m.Shutdown(f["channel_id"])
    if n == "sg_closing_signed":
        return m.ClosingSigned(f["channel_id"], (f["balance0"], f["balance1"]), f["sig"])
    if n == "sg_open_channel":
        return m.OpenChannel(
            f["channel_id"],
            f["nonce"].decode(errors="replace"),
            f["dispute_blocks"],
            (f["amount0"], f["amount1"]),
            f["funding_pub"],
            (f["rev_hash0"], f["rev_hash1"]),
        )
    if n == "sg_accept_channel":
        return m.AcceptChannel(
            f["channel_id"],
            f["funding_pub"],
            (f["rev_hash0"], f["rev_hash1"]),
            f["sig"],
            f["ledger_sig"],
        )
    return msg


def _bigsize(data: bytes, pos: int, where: str) -> tuple[int, int]:
    """A BOLT #1 BigSize at `pos` (minimally encoded) and the position after it."""
    if pos >= len(data):
        raise WireError(f"{where}: TLV stream truncated")
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    if pos + 1 + size > len(data):
        raise WireError(f"{where}: TLV stream truncated")
    value = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
    if value < {2: 0xFD, 4: 0x10000, 8: 0x100000000}[size]:
        raise WireError(f"{where}: TLV BigSize not minimally encoded")
    return value, pos + 1 + size


def _tlv_records(where: str, tail: bytes) -> dict[int, bytes]:
    """The records of a message's TLV stream (BOLT #1): types strictly increasing, an unknown
    even type refused (we do not know what the peer requires), an unknown odd one kept and
    ignored by the caller."""
    records: dict[int, bytes] = {}
    pos, last = 0, -1
    while pos < len(tail):
        kind, pos = _bigsize(tail, pos, where)
        length, pos = _bigsize(tail, pos, where)
        if kind <= last:
            raise WireError(f"{where}: TLV records out of order")
        if pos + length > len(tail):
            raise WireError(f"{where}: TLV record {kind} truncated")
        if kind % 2 == 0:
            raise WireError(f"{where}: unknown even TLV record {kind}")
        records[kind] = tail[pos : pos + length]
        pos, last = pos + length, kind
    return records


def _preimage_entries(data: bytes) -> tuple[tuple[int, bytes], ...]:
    if len(data) % PREIMAGE_ENTRY or len(data) > MAX_PREIMAGES * PREIMAGE_ENTRY:
        raise WireError(
            f"sg_preimages: {len(data)} bytes of entries is not 0..{MAX_PREIMAGES} x 40"
        )
    return tuple(
        (int.from_bytes(data[i : i + 8], "big"), data[i + 8 : i + PREIMAGE_ENTRY])
        for i in range(0, len(data), PREIMAGE_ENTRY)
    )
