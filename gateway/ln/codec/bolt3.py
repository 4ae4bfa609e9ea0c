"""BOLT #3 per-commitment secrets and key derivation (pure functions, no I/O).

Spec: https://github.com/lightning/bolts/blob/master/03-transactions.md
  - "Per-commitment Secret Requirements": `generate_from_seed(seed, I)`, I from 2^48-1 downwards.
  - "Efficient Per-commitment Secret Storage": a receiver keeps at most 49 (bucket, index, secret)
    entries, checks each new secret against the ones it can derive, and can re-derive every
    secret it was ever given. `SecretStore` implements that, with a compact byte form to persist.
  - "Key Derivation": `derive_pubkey`/`derive_privkey`, `derive_revocation_pubkey`/`_privkey`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from coincurve import PrivateKey, PublicKey

from gateway.ln.errors import KeyDerivationError, SecretError

INDEX_BITS = 48
START_INDEX = (1 << INDEX_BITS) - 1  # the first commitment uses 2^48 - 1, then counts down
MAX_ENTRIES = INDEX_BITS + 1  # buckets 0..48
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_ENTRY_LEN = 1 + 6 + 32  # bucket, 48-bit index, secret


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray) or len(secret) != 32:
        raise SecretError("a per-commitment secret is exactly 32 bytes")


def _check_index(index: int) -> None:
    if not 0 <= index <= START_INDEX:
        raise SecretError(f"commitment index {index} outside 0..2^48-1")


def _derive(base: bytes, bits: int, index: int) -> bytes:
    """Walk from `base` down the tree: for each set bit B < bits of index, flip it and hash."""
    p = bytearray(base)
    for b in range(bits - 1, -1, -1):
        if (index >> b) & 1:
            p[b // 8] ^= 1 << (b % 8)
            p = bytearray(hashlib.sha256(p).digest())
    return bytes(p)


def generate_from_seed(seed: bytes, index: int) -> bytes:
    """The per-commitment secret for commitment `index` (BOLT #3 generate_from_seed)."""
    _check_secret(seed)
    _check_index(index)
    return _from_seed(bytes(seed), index)


@functools.lru_cache(maxsize=1024)
def _from_seed(seed: bytes, index: int) -> bytes:
    """A channel asks for the same few secrets round after round (its latest commitment's, the
    next ones' hashes): each is derived once, from the walk of the previous index (`_walk`)."""
    return _walk(seed, index)


# seed -> (index, the walk's values: values[j] after its top j bits), the last derivation
_WALKS: dict[bytes, tuple[int, list[bytes]]] = {}
_MAX_WALKS = 1024


def _walk(seed: bytes, index: int) -> bytes:
    """`_derive(seed, 48, index)`, resuming the walk of this seed's previous index where the two
    indices part: the value after the top j bits depends on those bits only. A channel uses
    indices one after the other (2^48-1, 2^48-2, ...), so most secrets cost one or two SHA-256
    instead of up to 48."""
    last = _WALKS.get(seed)
    if last is None:
        start, values = 0, [seed]
    else:
        diff = last[0] ^ index
        start = INDEX_BITS - diff.bit_length()  # top bits the two indices share
        values = last[1][: start + 1]
    p = values[start]
    for j in range(start, INDEX_BITS):
        b = INDEX_BITS - 1 - j
        if (index >> b) & 1:
            q = bytearray(p)
            q[b // 8] ^= 1 << (b % 8)
            p = hashlib.sha256(q).digest()
        values.append(p)
    if len(_WALKS) >= _MAX_WALKS and seed not in _WALKS:
        _WALKS.clear()
    _WALKS[seed] = (index, values)
    return p


def per_commitment_point(secret: bytes) -> bytes:
    """The 33-byte compressed point secret*G sent to the peer in place of the secret."""
    _check_secret(secret)
    try:
        return PrivateKey(bytes(secret)).public_key.format(compressed=True)
    except ValueError as exc:
        raise SecretError(f"secret is not a valid secp256k1 scalar: {exc}") from exc


def _bucket_for(index: int) -> int:
    """Count of trailing zero bits of index (48 for index 0): where the spec stores it."""
    for b in range(INDEX_BITS):
        if (index >> b) & 1:
            return b
    return INDEX_BITS


@dataclass
class SecretStore:
    """Compact storage of the secrets received from the peer, newest index last.

    Secrets must arrive in order (2^48-1, 2^48-2, ...). `insert` refuses a secret that does
    not derive the ones already stored (the spec's "insert should fail" cases) and leaves the
    store unchanged; `derive` returns any secret ever inserted.
    """

    # bucket -> (index, secret)
    entries: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    last_index: int | None = None

    def insert(self, index: int, secret: bytes) -> None:
        _check_index(index)
        _check_secret(secret)
        if self.last_index is not None and index != self.last_index - 1:
            raise SecretError(f"expected secret for index {self.last_index - 1}, got {index}")
        bucket = _bucket_for(index)
        for b in range(bucket):
            known = self.entries.get(b)
            if known is not None and _derive(bytes(secret), bucket, known[0]) != known[1]:
                raise SecretError(
                    f"secret for index {index} does not derive stored index {known[0]}"
                )
        self.entries[bucket] = (index, bytes(secret))
        # Buckets below `bucket` are now derivable from this one: the spec keeps them anyway
        # (they are overwritten on the next inserts), so do we.
        self.last_index = index

    def derive(self, index: int) -> bytes:
        _check_index(index)
        for b in sorted(self.entries):
            known_index, known_secret = self.entries[b]
            mask = ~((1 << b) - 1)
            if (index & mask) == known_index:
                return _derive(known_secret, b, index)
        raise SecretError(f"secret for index {index} has not been received")

    def __len__(self) -> int:
        return len(self.entries)

    def to_bytes(self) -> bytes:
        """Compact form: count, then (bucket u8, index u48, secret 32) per entry."""
        out = bytearray([len(self.entries)])
        for b in sorted(self.entries):
            index, secret = self.entries[b]
            out += bytes([b]) + index.to_bytes(6, "big") + secret
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretStore:
        if not data or len(data) != 1 + data[0] * _ENTRY_LEN or data[0] > MAX_ENTRIES:
            raise SecretError("malformed secret store encoding")
        store = cls()
        for i in range(data[0]):
            chunk = data[1 + i * _ENTRY_LEN : 1 + (i + 1) * _ENTRY_LEN]
            bucket, index, secret = chunk[0], int.from_bytes(chunk[1:7], "big"), chunk[7:]
            if bucket > INDEX_BITS or bucket in store.entries or _bucket_for(index) != bucket:
                raise SecretError("malformed secret store entry")
            store.entries[bucket] = (index, bytes(secret))
        if store.entries:
            store.last_index = min(index for index, _ in store.entries.values())
        return store


# --- key derivation (BOLT #3 "Key Derivation") -----------------------------------------------


def _scalar(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _pub(point: bytes) -> PublicKey:
    try:
        return PublicKey(bytes(point))
    except ValueError as exc:
        raise KeyDerivationError(f"invalid public key {bytes(point).hex()}: {exc}") from exc


def _priv_bytes(value: int) -> bytes:
    value %= CURVE_ORDER
    if value == 0:
        raise KeyDerivationError("derived private key is zero")
    return value.to_bytes(32, "big")


def derive_pubkey(basepoint: bytes, per_commitment_point: bytes) -> bytes:
    """basepoint + SHA256(per_commitment_point || basepoint) * G."""
    tweak = hashlib.sha256(per_commitment_point + basepoint).digest()
    try:
        return _pub(basepoint).add(tweak).format(compressed=True)
    except ValueError as exc:
        raise KeyDerivationError(str(exc)) from exc


def derive_privkey(basepoint_secret: bytes, per_commitment_point: bytes) -> bytes:
    """basepoint_secret + SHA256(per_commitment_point || basepoint) mod n."""
    basepoint = PrivateKey(basepoint_secret).public_key.format(compressed=True)
    tweak = hashlib.sha256(per_commitment_point + basepoint).digest()
    return _priv_bytes(_scalar(basepoint_secret) + _scalar(tweak))


def derive_revocation_pubkey(revocation_basepoint: bytes, per_commitment_point: bytes) -> bytes:
    """rb * SHA256(rb || pcp) + pcp * SHA256(pcp || rb)."""
    t1 = hashlib.sha256(revocation_basepoint + per_commitment_point).digest()
    t2 = hashlib.sha256(per_commitment_point + revocation_basepoint).digest()
    try:
        a = _pub(revocation_basepoint).multiply(t1)
        b = _pub(per_commitment_point).multiply(t2)
        return PublicKey.combine_keys([a, b]).format(compressed=True)
    except ValueError as exc:
        raise KeyDerivationError(str(exc)) from exc


def derive_revocation_privkey(
    revocation_basepoint_secret: bytes, per_commitment_secret: bytes
) -> bytes:
    """rb_secret * SHA256(rb || pcp) + pc_secret * SHA256(pcp || rb) mod n.

    The wronged party computes this once the cheater's per-commitment secret is revealed:
    it is what lets it take the whole channel (the penalty).
    """
    rb = PrivateKey(revocation_basepoint_secret).public_key.format(compressed=True)
    pcp = PrivateKey(per_commitment_secret).public_key.format(compressed=True)
    t1 = _scalar(hashlib.sha256(rb + pcp).digest())
    t2 = _scalar(hashlib.sha256(pcp + rb).digest())
    return _priv_bytes(
        _scalar(revocation_basepoint_secret) * t1 + _scalar(per_commitment_secret) * t2
    )
