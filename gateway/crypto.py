"""secp256k1 on the hot path through libsecp256k1 (coincurve's cffi binding).

`MeterVerifier` keeps a meter's parsed public key and verifies 64-byte r||s signatures over a
32-byte digest without any DER round trip. libsecp256k1's verify accepts only low-S signatures,
which is exactly the rule of the reading format, so a high-S twin of a valid signature is refused.

`SiteKey` is the gateway's own key: it signs acknowledgements and commands for the meters.
"""

from __future__ import annotations

import os
from pathlib import Path

import coincurve
from coincurve.context import GLOBAL_CONTEXT
from coincurve.utils import ffi, lib

from gateway.errors import EnrollmentError, SiteKeyError
from sgcore import token as tk

_CTX = GLOBAL_CONTEXT.ctx


class MeterVerifier:
    """Verifies one meter's signatures. Not thread-safe (reuses one signature buffer)."""

    __slots__ = ("pubkey", "_pub", "_sig")

    def __init__(self, pubkey33: bytes) -> None:
        if not isinstance(pubkey33, bytes) or len(pubkey33) != 33 or pubkey33[0] not in (2, 3):
            raise EnrollmentError("a meter public key is 33 bytes, compressed (02/03 prefix)")
        try:
            key = coincurve.PublicKey(pubkey33)
        except ValueError as exc:
            raise EnrollmentError(f"not a point on secp256k1: {exc}") from exc
        self.pubkey = pubkey33
        self._pub = key.public_key
        self._sig = ffi.new("secp256k1_ecdsa_signature *")

    def verify_digest(self, signature64: bytes, digest32: bytes) -> bool:
        """True iff `signature64` (r || s, low-S) signs `digest32` under this meter's key."""
        if len(signature64) != 64 or len(digest32) != 32:
            return False
        if not lib.secp256k1_ecdsa_signature_parse_compact(_CTX, self._sig, signature64):
            return False  # r or s >= group order
        return lib.secp256k1_ecdsa_verify(_CTX, self._sig, digest32, self._pub) == 1


def sign_digest(private_key: coincurve.PrivateKey, digest32: bytes) -> bytes:
    """64-byte r || s signature of a 32-byte digest; libsecp256k1 always produces low-S."""
    return private_key.sign_recoverable(digest32, hasher=None)[:64]


class SiteKey:
    """The gateway's secp256k1 key, stored as 64 hex characters in a 0600 file."""

    def __init__(self, private_key: coincurve.PrivateKey) -> None:
        self._key = private_key
        self.pubkey: bytes = private_key.public_key.format(compressed=True)

    def delivery_key(self, meter_pubkey: bytes) -> bytes:
        """The key of a meter's token delivery tags (sgcore.token): ECDH x with its key."""
        point = coincurve.PublicKey(meter_pubkey).multiply(self._key.secret)
        return tk.delivery_key(point.format(compressed=False)[1:33])

    def sign_digest(self, digest32: bytes) -> bytes:
        return sign_digest(self._key, digest32)

    @classmethod
    def load_or_create(cls, path: Path) -> SiteKey:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            secret = coincurve.PrivateKey().secret
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret.hex() + "\n")
                f.flush()
                os.fsync(f.fileno())
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> SiteKey:
        try:
            text = path.read_text().strip()
            secret = bytes.fromhex(text)
            return cls(coincurve.PrivateKey(secret))
        except OSError as exc:
            raise SiteKeyError(f"{path}: cannot read site key ({exc.strerror})") from exc
        except ValueError as exc:
            raise SiteKeyError(f"{path}: not a 32-byte hex secp256k1 secret") from exc
