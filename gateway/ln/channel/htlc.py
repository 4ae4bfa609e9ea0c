"""HTLC updates (add / fulfill / fail), their encoding, and applying a batch to a commitment.

Pure, no I/O. A batch of updates proposed by one party turns commitment n into n+1; both parties
apply the same batch to the same base and must obtain byte-identical commitments.

Who may propose what: only the *offerer* adds its HTLCs (paying from its balance); only the
*receiver* fulfills (with the preimage: the amount moves to the receiver) or fails (the amount goes
back to the offerer). Per-hop fee: the grid charge ``base_msat + amount * ppm / 1e6``.
"""

from __future__ import annotations

import hashlib
import operator
import struct
from dataclasses import dataclass, replace

from gateway.ln.channel.commitment import Commitment, Htlc
from gateway.ln.errors import (
    BadPreimage,
    InsufficientBalance,
    ProtocolViolation,
    UnknownHtlc,
)

MAX_HTLCS_IN_FLIGHT = 4000  # per channel; bounds the commitment size (~220 kB)
_ADD = struct.Struct(">BBQQ32sIH")
_FULFILL = struct.Struct(">BBQ32s")
_FAIL = struct.Struct(">BBQH")
ADD, FULFILL, FAIL = 1, 2, 3
_ORDER = operator.attrgetter("offerer", "htlc_id")


def payment_hash(preimage: bytes) -> bytes:
    return hashlib.sha256(preimage).digest()


@dataclass(frozen=True)
class FeePolicy:
    """The grid charge a forwarding node takes for one hop, and the expiry delta it needs."""

    base_msat: int = 1000
    ppm: int = 100  # proportional part, parts per million of the forwarded amount
    cltv_delta: int = 6  # blocks between the incoming and outgoing HTLC expiry

    def fee(self, amount_msat: int) -> int:
        return self.base_msat + amount_msat * self.ppm // 1_000_000


@dataclass(frozen=True)
class AddHtlc:
    offerer: int
    htlc_id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    onion: bytes = b""  # routing instructions for the receiver (not part of the commitment)

    def encode(self) -> bytes:
        # an update is encoded to propose it, to persist the proposal and the queue: packed
        # once (the instance is immutable; the cache is not a field, so eq and hash ignore it)
        enc: bytes | None = self.__dict__.get("_enc")
        if enc is None:
            head = _ADD.pack(
                ADD,
                self.offerer,
                self.htlc_id,
                self.amount_msat,
                self.payment_hash,
                self.cltv_expiry,
                len(self.onion),
            )
            enc = head + self.onion
            object.__setattr__(self, "_enc", enc)
        return enc

    def htlc(self) -> Htlc:
        return Htlc(
            self.offerer, self.htlc_id, self.amount_msat, self.payment_hash, self.cltv_expiry
        )


@dataclass(frozen=True)
class FulfillHtlc:
    offerer: int  # offerer of the HTLC being fulfilled
    htlc_id: int
    preimage: bytes

    def encode(self) -> bytes:
        enc: bytes | None = self.__dict__.get("_enc")
        if enc is None:
            enc = _FULFILL.pack(FULFILL, self.offerer, self.htlc_id, self.preimage)
            object.__setattr__(self, "_enc", enc)
        return enc


@dataclass(frozen=True)
class FailHtlc:
    offerer: int
    htlc_id: int
    reason: str = ""

    def encode(self) -> bytes:
        raw = self.reason.encode()[:1000]
        return _FAIL.pack(FAIL, self.offerer, self.htlc_id, len(raw)) + raw


Update = AddHtlc | FulfillHtlc | FailHtlc


# A batch (a tuple, never changed) is encoded to sign it, to send it and to persist it, and a
# received one was decoded from bytes it can be stored as: the encodings of the last few
# batches are kept, by identity.
_BATCHES: dict[int, tuple[tuple[Update, ...], bytes]] = {}


def _remember(batch: tuple[Update, ...], data: bytes) -> None:
    if len(_BATCHES) >= 32:
        _BATCHES.clear()
    _BATCHES[id(batch)] = (batch, data)


def encode_updates(updates: list[Update] | tuple[Update, ...]) -> bytes:
    if type(updates) is tuple:
        hit = _BATCHES.get(id(updates))
        if hit is not None and hit[0] is updates:
            return hit[1]
    data = struct.pack(">I", len(updates)) + b"".join([u.encode() for u in updates])
    if type(updates) is tuple:
        _remember(updates, data)
    return data


def take_batch(
    queue: list[Update], max_count: int, max_bytes: int
) -> tuple[tuple[Update, ...], bytes]:
    """The longest head of `queue` (at least one update) of at most `max_count` updates whose
    encoding fits `max_bytes`, and that encoding."""
    encs: list[bytes] = []
    size = 4
    for u in queue[:max_count]:
        enc = u.encode()
        size += len(enc)
        if size > max_bytes and encs:
            break
        encs.append(enc)
    batch = tuple(queue[: len(encs)])
    data = struct.pack(">I", len(batch)) + b"".join(encs)
    _remember(batch, data)
    return batch, data


def decode_updates(data: bytes) -> tuple[Update, ...]:
    try:
        (count,) = struct.unpack_from(">I", data)
        pos = 4
        out: list[Update] = []
        for _ in range(count):
            kind = data[pos]
            if kind == ADD:
                _, off, hid, amt, ph, exp, olen = _ADD.unpack_from(data, pos)
                pos += _ADD.size
                onion = data[pos : pos + olen]
                if len(onion) != olen:
                    raise ProtocolViolation("truncated onion")
                pos += olen
                out.append(AddHtlc(off, hid, amt, ph, exp, bytes(onion)))
            elif kind == FULFILL:
                _, off, hid, pre = _FULFILL.unpack_from(data, pos)
                pos += _FULFILL.size
                out.append(FulfillHtlc(off, hid, pre))
            elif kind == FAIL:
                _, off, hid, rlen = _FAIL.unpack_from(data, pos)
                pos += _FAIL.size
                reason = data[pos : pos + rlen].decode(errors="replace")
                pos += rlen
                out.append(FailHtlc(off, hid, reason))
            else:
                raise ProtocolViolation(f"unknown update kind {kind}")
    except (struct.error, IndexError) as exc:
        raise ProtocolViolation(f"malformed update batch: {exc}") from exc
    if pos != len(data):
        raise ProtocolViolation("trailing bytes after update batch")
    batch = tuple(out)
    _remember(batch, bytes(data))
    return batch


def apply_updates(
    base: Commitment, updates: tuple[Update, ...], proposer: int, rev_hashes: tuple[bytes, bytes]
) -> Commitment:
    """Commitment ``base.number + 1`` after ``proposer``'s batch. Raises on any invalid update."""
    if proposer not in (0, 1):
        raise ProtocolViolation("proposer must be party 0 or 1")
    if not updates:
        raise ProtocolViolation("empty update batch")
    balances = list(base.balances)
    next_ids = list(base.next_htlc_ids)
    htlcs = {(h.offerer, h.htlc_id): h for h in base.htlcs}
    for u in updates:
        if isinstance(u, AddHtlc):
            if u.offerer != proposer:
                raise ProtocolViolation("only the offerer may add its HTLC")
            if u.htlc_id != next_ids[proposer]:
                raise ProtocolViolation(f"HTLC id {u.htlc_id}, expected {next_ids[proposer]}")
            if u.amount_msat <= 0 or len(u.payment_hash) != 32:
                raise ProtocolViolation("HTLC amount must be positive with a 32-byte hash")
            if u.amount_msat > balances[proposer]:
                raise InsufficientBalance(
                    f"HTLC of {u.amount_msat} msat exceeds balance {balances[proposer]}"
                )
            if len(htlcs) >= MAX_HTLCS_IN_FLIGHT:
                raise InsufficientBalance("too many HTLCs in flight")
            balances[proposer] -= u.amount_msat
            next_ids[proposer] += 1
            htlcs[(u.offerer, u.htlc_id)] = u.htlc()
        else:
            if u.offerer == proposer:
                raise ProtocolViolation("only the receiver may settle an HTLC")
            h = htlcs.pop((u.offerer, u.htlc_id), None)
            if h is None:
                raise UnknownHtlc(f"HTLC {u.offerer}/{u.htlc_id} is not in flight")
            if isinstance(u, FulfillHtlc):
                if payment_hash(u.preimage) != h.payment_hash:
                    raise BadPreimage(f"preimage does not match HTLC {u.offerer}/{u.htlc_id}")
                balances[1 - u.offerer] += h.amount_msat
            else:
                balances[u.offerer] += h.amount_msat
    new = replace(
        base,
        number=base.number + 1,
        balances=(balances[0], balances[1]),
        next_htlc_ids=(next_ids[0], next_ids[1]),
        rev_hashes=rev_hashes,
        # (offerer, id) is unique, so ordering by it is the HTLCs' canonical order; a C key
        # keeps the sort of thousands of mostly-ordered HTLCs out of Python comparisons
        htlcs=tuple(sorted(htlcs.values(), key=_ORDER)),
    )
    if new.total_msat != base.total_msat:
        raise ProtocolViolation("update batch changed the channel total")  # pragma: no cover
    return new
