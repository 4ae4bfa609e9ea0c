"""secp256k1 keys and signatures (coincurve; verification straight through libsecp256k1).

Public keys: 33-byte compressed SEC1, hex. Signatures: 64-byte compact r || s, low-S, hex,
over a 32-byte digest (the message is never hashed again). Parsed public keys are cached (a
ledger sees the same few hundred signers again and again), so a verify is one libsecp256k1 call.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

import coincurve
from coincurve.context import GLOBAL_CONTEXT
from coincurve.utils import ffi, lib

_HEX = re.compile(r"^[0-9a-f]*$")
_CTX = GLOBAL_CONTEXT.ctx


@functools.lru_cache(maxsize=16384)
def _parsed_pubkey(value: str) -> Any:
    """libsecp256k1's parsed form of a compressed public key (hex), or None if it is not one."""
    if not is_hex(value, 33) or value[:2] not in ("02", "03"):
        return None
    try:
        return coincurve.PublicKey(bytes.fromhex(value)).public_key
    except ValueError:
        return None


def is_hex(value: object, nbytes: int) -> bool:
    return isinstance(value, str) and len(value) == 2 * nbytes and bool(_HEX.match(value))


def is_pubkey(value: object) -> bool:
    return isinstance(value, str) and _parsed_pubkey(value) is not None


def meter_id(pubkey_hex: str) -> str:
    """A meter's id: sha256(compressed public key)[:16], hex (as in sgcore.reading)."""
    return hashlib.sha256(bytes.fromhex(pubkey_hex)).digest()[:16].hex()


class SigningKey:
    """A private key that signs 32-byte digests."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._key = coincurve.PrivateKey(secret) if secret is not None else coincurve.PrivateKey()
        self._pubkey = self._key.public_key.format(compressed=True).hex()  # once: blocks name it

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
        return self._pubkey

    def sign_digest(self, digest: bytes) -> str:
        """Compact r || s (hex) over `digest`: RFC 6979 nonce, low-S (libsecp256k1's own), so
        the same key and digest always give the same signature (replicas seal identical blocks).
        Two libsecp256k1 calls, no DER round trip (each call lets the GIL go and waits for it
        back: the producer seals a block while the HTTP threads run)."""
        if len(digest) != 32:
            raise ValueError("sign a 32-byte digest")
        sig = ffi.new("secp256k1_ecdsa_signature *")
        if not lib.secp256k1_ecdsa_sign(_CTX, sig, digest, self._key.secret, ffi.NULL, ffi.NULL):
            raise ValueError("libsecp256k1 could not sign (invalid private key)")
        out = ffi.new("unsigned char[64]")
        lib.secp256k1_ecdsa_signature_serialize_compact(_CTX, out, sig)
        return bytes(ffi.buffer(out, 64)).hex()


def verify_digest(pubkey_hex: str, digest: bytes, sig_hex: str) -> bool:
    """True when `sig_hex` (compact, low-S) signs `digest` under `pubkey_hex`."""
    if not is_hex(sig_hex, 64) or len(digest) != 32 or not isinstance(pubkey_hex, str):
        return False
    pub = _parsed_pubkey(pubkey_hex)
    if pub is None:
        return False
    sig = ffi.new("secp256k1_ecdsa_signature *")
    if not lib.secp256k1_ecdsa_signature_parse_compact(_CTX, sig, bytes.fromhex(sig_hex)):
        return False  # r or s >= the group order
    # libsecp256k1's verify refuses high-S signatures, so malleated copies fail here.
    return bool(lib.secp256k1_ecdsa_verify(_CTX, sig, digest, pub) == 1)
