"""secp256k1 ECDSA for the meters, in plain Python that runs on MicroPython and CPython.

- keys: `private_key_from_random(32 random bytes)`, `public_key(priv)` (33-byte compressed),
  `PublicKey.from_bytes` (33-byte compressed or 65-byte uncompressed, checked on the curve);
- signing: deterministic nonce per RFC 6979 with HMAC-SHA256, low-S, 64-byte r || s. The same
  key and digest give byte for byte the signature libsecp256k1 (coincurve) gives;
- verification: strict like libsecp256k1 (a high-S signature is invalid);
- `Signer` / `Verifier` / `KeyDeriver` do the work in bounded slices (`step()` -> True when
  finished) so the meter's main loop stays responsive; `sign()` / `verify()` / `public_key()`
  just loop over the steps. On the emulated board (automatic GC off, collections only at the
  main loop's top level) use the step-wise classes: a one-shot call leaves far more garbage
  than the heap holds (a signature ~0.4 MB, a verification ~2 MB) and ends in MemoryError.

Malformed input (wrong lengths, a private key of 0 or >= n, a public key off the curve)
raises Secp256k1Error, a ValueError. A well-formed but wrong signature verifies False.
k*G uses a fixed table on flash (sgcore.secp256k1_table); u2*Q the key's own table when there is
one (sgcore.secp256k1_keytable: the issuer's key on a meter), else GLV + width-5 wNAF
(docs/crypto.md).
"""

import hashlib

from sgcore import secp256k1_arith as _ec
from sgcore import secp256k1_keytable as _keytable
from sgcore import secp256k1_table as _table
from sgcore.compat import const
from sgcore.rfc6979 import Rfc6979Nonces

Secp256k1Error = _ec.Secp256k1Error
TableError = _table.TableError
N = _ec.N
_HALF_N = N >> 1

# Work per step(); sized so that one step costs at most ~1.5 M wasm fuel and allocates < 10 KB
# (measured by hil_tests/bench/bench_crypto.py).
_ADDS_PER_STEP = const(1)  # fixed-base table additions (~0.4 M fuel, ~5 KB each)
_VERIFY_ADDS_PER_STEP = const(2)
_WNAF_WORK_PER_STEP = const(5)  # a wNAF doubling is 2, an addition 3 (a step ends at 5 or past it)
_INVERSE_CHUNK = const(12)  # quotients (~11 k fuel, ~0.3 KB each): one run of Lehmer's a step
_SQRT_CHUNK = const(20)  # squarings (~45 k fuel each)


def _bytes_of(value, length, what):
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != length:
        raise Secp256k1Error(f"{what} must be {length} bytes")
    return bytes(value)


def _secret(priv):
    d = int.from_bytes(_bytes_of(priv, 32, "private key"), "big")
    if not 0 < d < N:
        raise Secp256k1Error("private key out of range")
    return d


def private_key_from_random(random32):
    """A valid private key from 32 random bytes supplied by the caller (the board's RNG):
    the bytes themselves if they are in 1..n-1, else their sha256, repeatedly."""
    key = _bytes_of(random32, 32, "random seed")
    while not 0 < int.from_bytes(key, "big") < N:
        key = hashlib.sha256(key).digest()
    return key


class PublicKey:
    """A point on the curve, parsed and checked once (parsing a compressed key costs a
    square root: reuse the object when verifying many signatures of one key)."""

    __slots__ = ("x", "y")

    def __init__(self, x, y):
        if not _ec.is_on_curve(x, y):
            raise Secp256k1Error("public key is not on the curve")
        self.x = x
        self.y = y

    @classmethod
    def from_bytes(cls, data):
        return _ec.run_to_end(_parse_steps(data))

    def to_bytes(self, compressed=True):
        if compressed:
            return bytes((2 + (self.y & 1),)) + self.x.to_bytes(32, "big")
        return b"\x04" + self.x.to_bytes(32, "big") + self.y.to_bytes(32, "big")

    def __eq__(self, other):
        return isinstance(other, PublicKey) and self.x == other.x and self.y == other.y


def _parse_steps(data, chunk=_SQRT_CHUNK):
    """Generator: the PublicKey encoded in `data` (return value), `chunk` squarings a step."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise Secp256k1Error("public key must be bytes")
    data = bytes(data)
    if len(data) == 33 and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        if x >= _ec.P:
            raise Secp256k1Error("public key x is not a field element")
        y = yield from _ec.sqrt_steps(x * x * x + 7, chunk)
        if y is None:
            raise Secp256k1Error("public key is not on the curve")
        if y & 1 != data[0] & 1:
            y = _ec.P - y
        return PublicKey(x, y)
    if len(data) == 65 and data[0] == 4:
        return PublicKey(int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big"))
    raise Secp256k1Error("public key must be 33 bytes (02/03 || x) or 65 bytes (04 || x || y)")


class KeyDeriver:
    """The public key of a 32-byte private key, a bounded slice of work per `step()`; then
    `public_key` holds it serialized (33 bytes compressed by default)."""

    __slots__ = ("public_key", "_steps")

    def __init__(self, priv, compressed=True):
        self.public_key = None
        self._steps = self._run(_secret(priv), compressed)

    def step(self):
        return next(self._steps)

    def _run(self, d, compressed):
        point = yield from _table.mul_g_steps(d, _ADDS_PER_STEP)
        z = yield from _ec.inverse_steps(point[2], _ec.P, _INVERSE_CHUNK)
        zz = z * z % _ec.P
        key = PublicKey(point[0] * zz % _ec.P, point[1] * zz * z % _ec.P)
        self.public_key = key.to_bytes(compressed)
        while True:
            yield True


def public_key(priv, compressed=True):
    """The public key of a 32-byte private key, serialized (33 bytes compressed by default)."""
    deriver = KeyDeriver(priv, compressed)
    while not deriver.step():
        pass
    return deriver.public_key


class Signer:
    """ECDSA signature of a 32-byte digest, a bounded slice of work per `step()`.

    signer = Signer(priv, digest)
    while not signer.step():
        serve_the_relay_and_the_uart()
    record = body + signer.signature
    """

    __slots__ = ("signature", "_steps")

    def __init__(self, priv, msg32):
        d = _secret(priv)
        msg32 = _bytes_of(msg32, 32, "message digest")
        self.signature = None
        self._steps = self._run(d, msg32)

    def step(self):
        """Do one slice of work; True once `signature` is set (and on every later call)."""
        return next(self._steps)

    def _run(self, d, msg32):
        z = int.from_bytes(msg32, "big")
        nonces = Rfc6979Nonces(d, msg32, N)
        yield False
        while True:
            k = nonces.next_candidate()
            point = yield from _table.mul_g_steps(k, _ADDS_PER_STEP)
            zi = yield from _ec.inverse_steps(point[2], _ec.P, _INVERSE_CHUNK)
            r = _ec.fmul(point[0], _ec.fmul(zi, zi)) % _ec.P % N
            if r == 0:
                continue  # RFC 6979 3.4: try the next k (probability ~2^-256)
            kinv = yield from _ec.inverse_steps(k, N, _INVERSE_CHUNK)
            s = kinv * (z + r * d) % N
            if s == 0:
                continue
            if s > _HALF_N:
                s = N - s
            self.signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
            break
        while True:
            yield True


class Verifier:
    """ECDSA verification, a bounded slice of work per `step()`; then `valid` is a bool.

    `pub` is a PublicKey (parse it once with PublicKey.from_bytes when verifying many
    signatures of one key) or its 33/65-byte encoding, then parsed during the first steps:
    a wrong length raises here, a point off the curve raises Secp256k1Error from step()."""

    __slots__ = ("valid", "public_key", "_steps")

    def __init__(self, pub, msg32, sig64):
        msg32 = _bytes_of(msg32, 32, "message digest")
        sig64 = _bytes_of(sig64, 64, "signature")
        if not isinstance(pub, PublicKey):
            if not isinstance(pub, (bytes, bytearray, memoryview)) or len(pub) not in (33, 65):
                raise Secp256k1Error("public key must be a PublicKey or 33 / 65 bytes")
            pub = bytes(pub)
        self.valid = None
        self.public_key = pub if isinstance(pub, PublicKey) else None  # parsed: keep it for reuse
        self._steps = self._run(pub, msg32, sig64)

    def step(self):
        return next(self._steps)

    def _run(self, pub, msg32, sig64):
        r = int.from_bytes(sig64[:32], "big")
        s = int.from_bytes(sig64[32:], "big")
        table = _keytable.table_for(pub)
        if table is not None and not table.checked:
            ok = yield from table.check_steps()  # once per boot
            if not ok:
                _keytable.refuse(table)
                table = None
        if table is not None:
            if not isinstance(pub, PublicKey):
                self.public_key = PublicKey(table.x, table.y)
        elif not isinstance(pub, PublicKey):
            pub = yield from _parse_steps(pub)
            self.public_key = pub
        self.valid = False
        if 0 < r < N and 0 < s <= _HALF_N:
            w = yield from _ec.inverse_steps(s, N, _INVERSE_CHUNK)
            z = int.from_bytes(msg32, "big")
            u1 = z * w % N
            u2 = r * w % N
            a = yield from _table.mul_g_steps(u1, _VERIFY_ADDS_PER_STEP)
            yield False
            if table is not None:  # u2*Q from the key's table, into the same accumulator
                a = yield from table.add_steps(a, u2, _VERIFY_ADDS_PER_STEP)
            else:  # a key without a table (loaded only then: a meter has the issuer's)
                from sgcore import secp256k1_wnaf as _wnaf

                b = yield from _wnaf.mul_steps(u2, pub.x, pub.y, _WNAF_WORK_PER_STEP)
                yield False
                a = _ec.add(a, b)
            self.valid = _x_matches(a, r)
        while True:
            yield True


def _x_matches(point, r):
    """x(point) mod n == r, without an inversion: X == r' Z^2 (mod P) for r' = r or r + n."""
    if point[2] % _ec.P == 0:
        return False
    zz = _ec.fmul(point[2], point[2])
    if (point[0] - _ec.fmul(r, zz)) % _ec.P == 0:
        return True
    return r + N < _ec.P and (point[0] - _ec.fmul(r + N, zz)) % _ec.P == 0


def sign(priv, msg32):
    """64-byte r || s signature of the 32-byte digest `msg32` (all steps at once)."""
    signer = Signer(priv, msg32)
    while not signer.step():
        pass
    return signer.signature


def verify(pub, msg32, sig64):
    """True if `sig64` is a valid low-S signature of `msg32` by `pub` (PublicKey or bytes)."""
    verifier = Verifier(pub, msg32, sig64)
    while not verifier.step():
        pass
    return verifier.valid
