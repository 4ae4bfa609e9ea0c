"""Fixed-base multiplication k*B from a precomputed table of affine points, read from flash.

A table holds d * 2^(W i) * B for the windows i = 0..NWIN-1 and the digits d = 1..2^(W-1).
k is recoded into signed W-bit digits (-(2^(W-1) - 1)..2^(W-1)), so k*B is a sum of at most
NWIN table points (negation is free): no doublings at all. Each entry is read with seek +
readinto, so a table costs no heap. Two kinds of table (layouts in docs/crypto.md):

- G's table, secp256k1_g.bin (W = 8, 33 windows, 270 KB; tools/gen_secp256k1_table.py), next to
  this module or set with `use_table(path)`; an image without it can build it on the device once
  with sgcore.secp256k1_table_builder. Signing costs one addition per window.
- a public key's table (sgcore.secp256k1_keytable): the issuer's key is fixed, so a meter keeps
  one for it and a verification u1*G + u2*Q is two table sums into one accumulator.
"""

from sgcore import secp256k1_arith as _ec
from sgcore.compat import const

_W = const(8)
NWIN = const(33)
_HALF = const(128)  # 2^(W-1)
_ENTRY = const(64)
HEADER = b"SGGT\x08\x21\x00\x00"
TABLE_SIZE = const(270344)  # 8 + 33 * 128 * 64
TABLE_SHA256 = "49e585c31c3b8152793ad58517cd3d19c6658e8a7049a2674c87650b9d7ea493"

try:
    _path = __file__.rsplit("/", 1)[0] + "/secp256k1_g.bin"
except NameError:  # a frozen module has no __file__
    _path = "secp256k1_g.bin"
_table = None


class TableError(_ec.Secp256k1Error):
    """A table is missing, damaged, or is not the file this code expects."""


def use_table(path):
    """Read G's table from `path` from now on (closes a table already open)."""
    global _path, _table
    if _table is not None:
        _table.close()
    _path = path
    _table = None


def _open():
    global _table
    if _table is None:
        try:
            f = open(_path, "rb")
        except OSError:
            raise TableError(f"secp256k1 fixed-base table not found at {_path}") from None
        if f.read(8) != HEADER:
            f.close()
            raise TableError(f"{_path} is not a W=8 secp256k1 table")
        _table = f
    return _table


def file_digest(f, start, buf):
    """sha256 of file `f` from offset `start` to its end (no garbage per chunk)."""
    import hashlib

    f.seek(start)
    h = hashlib.sha256()
    n = f.readinto(buf)
    while n:
        h.update(buf if n == len(buf) else buf[:n])
        n = f.readinto(buf)
    return h.digest()


def table_digest():
    """sha256 of G's whole table file, hex: compare with TABLE_SHA256 in a boot self-test."""
    from binascii import hexlify

    return hexlify(file_digest(_open(), 0, bytearray(512))).decode()


def signed_digits(k, w=_W, nwin=NWIN):
    """k (0 <= k < 2^256) as `nwin` signed w-bit digits, least significant first."""
    full = 1 << w
    out = []
    while len(out) < nwin:
        d = k & (full - 1)
        k >>= w
        if d > full >> 1:
            d -= full
            k += 1
        out.append(d)
    return out


def read_entry(f, buf, offset):
    """The affine point (x, y) stored at `offset` of table file `f`."""
    f.seek(offset)
    if f.readinto(buf) != _ENTRY:
        raise TableError("secp256k1 table is truncated")
    return int.from_bytes(buf[:32], "big"), int.from_bytes(buf[32:], "big")


def add_digits_steps(acc, f, first, half, digits, adds_per_step):
    """Generator: acc + sum of the table points named by `digits` (its return value), where
    entry (window i, digit d) of table file `f` is at first + 64 (half i + d - 1); yields False
    every `adds_per_step` additions."""
    buf = bytearray(_ENTRY)
    offset = first - _ENTRY
    done = 0
    for d in digits:
        if d:
            x, y = read_entry(f, buf, offset + (d if d > 0 else -d) * _ENTRY)
            acc = _ec.add_affine(acc, x, y if d > 0 else _ec.P - y)
            done += 1
            if done == adds_per_step:
                done = 0
                yield False
        offset += half * _ENTRY
    return acc


def mul_g_steps(k, adds_per_step):
    """Generator: k*G as a Jacobian point (its return value), yielding False every
    `adds_per_step` table additions."""
    f = _open()
    digits = signed_digits(k)
    acc = yield from add_digits_steps(_ec.INFINITY, f, 8, _HALF, digits, adds_per_step)
    return acc


def mul_g(k):
    """k*G as a Jacobian point, in one go."""
    return _ec.run_to_end(mul_g_steps(k, 1 << 30))
