"""HMAC-SHA256 (RFC 2104) on hashlib.sha256: MicroPython has no `hmac` module.

`HmacSha256Key(key)` precomputes the padded inner and outer keys once, so a caller
that MACs many messages under one key (the RFC 6979 nonce generator) pays only for
the two hash passes per message.
"""

import hashlib

_BLOCK = 64  # SHA-256 block size in bytes
# The pads as 512-bit integers: one big-int XOR is far cheaper on MicroPython than a byte loop.
_IPAD = int.from_bytes(b"\x36" * _BLOCK, "big")
_OPAD = int.from_bytes(b"\x5c" * _BLOCK, "big")


def _xor_pad(key, pad):
    return (int.from_bytes(key, "big") ^ pad).to_bytes(_BLOCK, "big")


class HmacSha256Key:
    """A key prepared for HMAC-SHA256: `mac(*parts)` returns the 32-byte tag of b"".join(parts)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key):
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise TypeError("HMAC key must be bytes")
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = bytes(key) + b"\x00" * (_BLOCK - len(key))
        self._inner = _xor_pad(key, _IPAD)
        self._outer = _xor_pad(key, _OPAD)

    def mac(self, *parts):
        inner = hashlib.sha256(self._inner)
        for part in parts:
            inner.update(part)
        return hashlib.sha256(self._outer + inner.digest()).digest()


def hmac_sha256(key, msg):
    """The 32-byte HMAC-SHA256 tag of `msg` under `key`."""
    return HmacSha256Key(key).mac(msg)
