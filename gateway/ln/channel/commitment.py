"""The signed state of a channel (a commitment) and its canonical byte encoding. Pure, no I/O.

Both parties sign the *same* commitment: party 0 is the channel opener, party 1 the acceptor.
A commitment carries each party's revocation hash for its number, sha256(per-commitment secret)
(the secret is BOLT #3 shachain-generated, as the ledger expects, docs/ledger-api.md §3); once a
party has moved past the commitment it reveals the secret, which *revokes* it: if the party later
publishes it anyway, the other shows the secret to the ledger and takes the whole channel.

Canonical encoding (big-endian), signed as sha256(b"sgrid/commitment/v1" || encoding):

    channel_id 32 | number u64 | balance0 u64 | balance1 u64 | next_htlc_id0 u64 | next_htlc_id1 u64
    | revocation_hash0 32 | revocation_hash1 32 | n_htlcs u32 | n * (offerer u8 | id u64 | amount u64 | hash 32 | expiry u32)
"""

from __future__ import annotations

import functools
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey, PublicKey
from coincurve.context import GLOBAL_CONTEXT
from coincurve.utils import ffi, lib

from gateway.ln.errors import ProtocolViolation

COMMITMENT_TAG = b"sgrid/commitment/v1"
CLOSING_TAG = b"sgrid/closing/v1"
_HEAD = struct.Struct(">32sQQQQQ32s32sI")
_HTLC = struct.Struct(">BQQ32sI")


@dataclass(frozen=True, order=True)
class Htlc:
    """An in-flight conditional payment: ``offerer`` pays ``amount_msat`` against the preimage."""

    offerer: int  # party index (0 opener, 1 acceptor) whose balance funds the HTLC
    htlc_id: int  # per-offerer sequence number, never reused
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int  # ledger height after which the offerer may take the amount back

    def encode(self) -> bytes:
        # an HTLC stays in every commitment until it settles: its bytes are packed once (the
        # instance is immutable; the cache is not a field, so eq, order and hash ignore it)
        enc: bytes | None = self.__dict__.get("_enc")
        if enc is None:
            enc = _HTLC.pack(
                self.offerer, self.htlc_id, self.amount_msat, self.payment_hash, self.cltv_expiry
            )
            object.__setattr__(self, "_enc", enc)
        return enc

    @classmethod
    def decode(cls, data: bytes) -> Htlc:
        if len(data) != _HTLC.size:
            raise ProtocolViolation("HTLC encoding has the wrong length")
        return cls(*_HTLC.unpack(data))

    @property
    def key(self) -> tuple[int, int]:
        return (self.offerer, self.htlc_id)


@dataclass(frozen=True)
class Commitment:
    channel_id: bytes
    number: int
    balances: tuple[int, int]  # msat spendable by party 0 and party 1
    next_htlc_ids: tuple[int, int]
    rev_hashes: tuple[bytes, bytes]  # sha256(per-commitment secret) of party 0 and 1 for `number`
    htlcs: tuple[Htlc, ...] = ()  # sorted by (offerer, htlc_id)

    @property
    def in_flight_msat(self) -> int:
        # checked after every step (the channel invariant): summed once per commitment
        total: int | None = self.__dict__.get("_in_flight")
        if total is None:
            total = sum(h.amount_msat for h in self.htlcs)
            object.__setattr__(self, "_in_flight", total)
        return total

    @property
    def total_msat(self) -> int:
        return self.balances[0] + self.balances[1] + self.in_flight_msat

    def encode(self) -> bytes:
        """The canonical bytes, built once per commitment: a round encodes the same commitment
        to sign it, to verify it, to persist it and to digest its ledger states."""
        enc: bytes | None = self.__dict__.get("_enc")
        if enc is None:
            enc = self._encode()
            object.__setattr__(self, "_enc", enc)
        return enc

    def _encode(self) -> bytes:
        head = _HEAD.pack(
            self.channel_id,
            self.number,
            self.balances[0],
            self.balances[1],
            self.next_htlc_ids[0],
            self.next_htlc_ids[1],
            self.rev_hashes[0],
            self.rev_hashes[1],
            len(self.htlcs),
        )
        return head + b"".join(h.encode() for h in self.htlcs)

    @classmethod
    def decode(cls, data: bytes) -> Commitment:
        if len(data) < _HEAD.size:
            raise ProtocolViolation("commitment encoding too short")
        cid, num, b0, b1, n0, n1, p0, p1, count = _HEAD.unpack_from(data)
        if len(data) != _HEAD.size + count * _HTLC.size:
            raise ProtocolViolation("commitment encoding has the wrong length")
        htlcs = tuple(
            Htlc(*_HTLC.unpack_from(data, _HEAD.size + i * _HTLC.size)) for i in range(count)
        )
        if list(htlcs) != sorted(htlcs):
            raise ProtocolViolation("commitment HTLCs are not in canonical order")
        return cls(cid, num, (b0, b1), (n0, n1), (p0, p1), htlcs)

    def digest(self) -> bytes:
        d: bytes | None = self.__dict__.get("_digest")
        if d is None:
            d = hashlib.sha256(COMMITMENT_TAG + self.encode()).digest()
            object.__setattr__(self, "_digest", d)
        return d


def closing_digest(channel_id: bytes, balances: tuple[int, int]) -> bytes:
    """What both parties sign to close cooperatively: the final split of the channel."""
    payload = channel_id + struct.pack(">QQ", balances[0], balances[1])
    return hashlib.sha256(CLOSING_TAG + payload).digest()


def sign(priv: bytes, digest: bytes) -> bytes:
    """64-byte compact ECDSA r||s over the digest itself: low-S and RFC 6979 deterministic, so a
    retransmitted signature is byte-identical (the ledger's format, docs/ledger-api.md §1)."""
    if len(digest) != 32:
        raise ValueError("a signed digest is 32 bytes")
    secret = _private_key(priv).secret  # parsed and checked once per key
    parsed = ffi.new("secp256k1_ecdsa_signature *")
    if not lib.secp256k1_ecdsa_sign(_CTX, parsed, digest, secret, ffi.NULL, ffi.NULL):
        raise ValueError("the private key is invalid")
    out = ffi.new("unsigned char[64]")
    lib.secp256k1_ecdsa_signature_serialize_compact(_CTX, out, parsed)
    return bytes(ffi.buffer(out, 64))


def verify(pub: bytes, digest: bytes, sig: bytes) -> bool:
    """libsecp256k1's verify of a compact r||s (which refuses high-S) under a 33-byte key."""
    if len(sig) != 64 or len(digest) != 32:
        return False
    try:
        key = _public_key(pub)
    except (ValueError, TypeError):
        return False
    parsed = ffi.new("secp256k1_ecdsa_signature *")
    if not lib.secp256k1_ecdsa_signature_parse_compact(_CTX, parsed, sig):
        return False  # r or s >= the group order
    return lib.secp256k1_ecdsa_verify(_CTX, parsed, digest, key) == 1


_CTX = GLOBAL_CONTEXT.ctx


@functools.lru_cache(maxsize=256)
def _private_key(priv: bytes) -> PrivateKey:
    """A node signs with the same few keys (its node key, its channels' funding keys) round
    after round: each is parsed (and its public key computed) once."""
    return PrivateKey(priv)


@functools.lru_cache(maxsize=1024)
def _public_key(pub: bytes) -> Any:
    """libsecp256k1's parsed key of a peer's node or funding key, parsed once."""
    return PublicKey(pub).public_key
