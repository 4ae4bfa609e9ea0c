"""Deterministic ECDSA nonces: RFC 6979 section 3.2 (HMAC_DRBG) with HMAC-SHA256.

https://www.rfc-editor.org/rfc/rfc6979#section-3.2

`Rfc6979Nonces(x, h1, q)` yields the candidate nonces k in order: the first one is the
nonce of steps a..h; each further `next_candidate()` is step h.3 ("K = HMAC_K(V || 0x00),
V = HMAC_K(V)", then generate again), which the signer asks for when r or s came out 0.
No extra entropy (section 3.6): the result matches libsecp256k1's default nonce function.
"""

from sgcore.hmac_sha256 import HmacSha256Key

_HLEN = 32  # SHA-256 output in bytes


def _bit_length(value):
    return len(bin(value)) - 2  # MicroPython's int has no bit_length()


class Rfc6979Nonces:
    __slots__ = ("_q", "_qlen", "_rlen", "_key", "_v", "_started")

    def __init__(self, secret, h1, q):
        """`secret` is the private key x (1 <= x < q), `h1` the message hash (bytes)."""
        if not 0 < secret < q:
            raise ValueError("private key out of range")
        self._q = q
        self._qlen = _bit_length(q)
        self._rlen = (self._qlen + 7) // 8
        self._seed(secret.to_bytes(self._rlen, "big") + self._bits2octets(h1))
        self._started = False

    def _seed(self, material):
        """Steps b..g; `material` is int2octets(x) || bits2octets(h1)."""
        v = b"\x01" * _HLEN  # step b
        key = HmacSha256Key(b"\x00" * _HLEN)  # step c
        key = HmacSha256Key(key.mac(v, b"\x00", material))  # step d
        v = key.mac(v)  # step e
        key = HmacSha256Key(key.mac(v, b"\x01", material))  # step f
        self._v = key.mac(v)  # step g
        self._key = key

    def _bits2int(self, octets):
        value = int.from_bytes(octets, "big")
        excess = len(octets) * 8 - self._qlen
        return value >> excess if excess > 0 else value

    def _bits2octets(self, octets):
        z = self._bits2int(octets)
        if z >= self._q:
            z -= self._q
        return z.to_bytes(self._rlen, "big")

    def next_candidate(self):
        """The next nonce k with 1 <= k < q (step h)."""
        key = self._key
        if self._started:  # the caller rejected the previous k: step h.3
            key = HmacSha256Key(key.mac(self._v, b"\x00"))
            self._v = key.mac(self._v)
            self._key = key
        self._started = True
        while True:
            t = b""
            while len(t) * 8 < self._qlen:  # step h.2
                self._v = key.mac(self._v)
                t += self._v
            k = self._bits2int(t)
            if 0 < k < self._q:
                return k
            key = HmacSha256Key(key.mac(self._v, b"\x00"))  # step h.3
            self._v = key.mac(self._v)
            self._key = key
