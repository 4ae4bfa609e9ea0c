"""secp256k1 keys and signatures (coincurve).

Public keys: 33-byte compressed SEC1, hex. Signatures: 64-byte compact r || s, low-S, hex,
over a 32-byte digest (the message is never hashed again).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import coincurve
from coincurve.ecdsa import cdata_to_der, der_to_cdata, deserialize_compact, serialize_compact

_HEX = re.compile(r"^[0-9a-f]*$")


def is_hex(value: object, nbytes: int) -> bool:
    return isinstance(value, str) and len(value) == 2 * nbytes and bool(_HEX.match(value))


def is_pubkey(value: object) -> bool:
    if not is_hex(value, 33) or str(value)[:2] not in ("02", "03"):
        return False
    try:
        coincurve.PublicKey(bytes.fromhex(str(value)))
    except ValueError:
        return False
    return True


def meter_id(pubkey_hex: str) -> str:
    """A meter's id: sha256(compressed public key)[:16], hex (as in sgcore.reading)."""
    return hashlib.sha256(bytes.fromhex(pubkey_hex)).digest()[:16].hex()


class SigningKey:
    """A private key that signs 32-byte digests."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._key = coincurve.PrivateKey(secret) if secret is not None else coincurve.PrivateKey()

    @classmethod
    def from_hex(cls, text: str) -> SigningKey:
        return cls(bytes.fromhex(text.strip()))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        return cls.from_hex(path.read_text())

    def secret_hex(self) -> str:
        return self._key.secret.hex()

    @property
    def pubkey(self) -> str:
        return self._key.public_key.format(compressed=True).hex()

    def sign_digest(self, digest: bytes) -> str:
        if len(digest) != 32:
            raise ValueError("sign a 32-byte digest")
        der = self._key.sign(digest, hasher=None)  # RFC 6979, libsecp256k1 emits low-S
        return serialize_compact(der_to_cdata(der)).hex()


def verify_digest(pubkey_hex: str, digest: bytes, sig_hex: str) -> bool:
    """True when `sig_hex` (compact, low-S) signs `digest` under `pubkey_hex`."""
    if not is_hex(sig_hex, 64) or not is_pubkey(pubkey_hex):
        return False
    try:
        der = cdata_to_der(deserialize_compact(bytes.fromhex(sig_hex)))
        # libsecp256k1's verify refuses high-S signatures, so malleated copies fail here.
        return coincurve.PublicKey(bytes.fromhex(pubkey_hex)).verify(der, digest, hasher=None)
    except ValueError:
        return False
