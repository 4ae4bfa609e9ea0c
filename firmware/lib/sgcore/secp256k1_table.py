"""Fixed-base multiplication k*G from a precomputed table of affine points, read from flash.

The table (secp256k1_g.bin, made by tools/gen_secp256k1_table.py, layout in docs/crypto.md)
holds d * 2^(6i) * G for the 43 windows i and digits d = 1..32. k is recoded into signed
6-bit digits (-31..32), so k*G is a sum of at most 43 table points (negation is free):
no doublings at all. Each entry is read with seek + readinto, so the 88 KB table costs no heap.

The file sits next to this module; a firmware image that keeps it elsewhere calls
`use_table(path)` once at boot. An image without it can build it on the device once with
sgcore.secp256k1_table_builder (step-wise, ~0.9 G fuel) and keep it on /flash.
"""

from sgcore import secp256k1_arith as _ec
from sgcore.compat import const

_W = const(6)
NWIN = const(43)
_HALF = const(32)  # 2^(W-1): digits are -31..32
_FULL = const(64)
_MASK = const(63)
HEADER = b"SGGT\x06\x2b\x00\x00"
_ENTRY = const(64)
TABLE_SIZE = const(88072)  # 8 + 43 * 32 * 64
TABLE_SHA256 = "95ce1ef0bfe5c9983355da24789d7db85366fd9cdc110c29ebd3be78325e24ea"

try:
    _path = __file__.rsplit("/", 1)[0] + "/secp256k1_g.bin"
except NameError:  # a frozen module has no __file__
    _path = "secp256k1_g.bin"
_table = None


class TableError(_ec.Secp256k1Error):
    """The fixed-base table is missing or is not the file this code expects."""


def use_table(path):
    """Read the table from `path` from now on (closes a table already open)."""
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
            raise TableError(f"{_path} is not a W=6 secp256k1 table")
        _table = f
    return _table


def table_digest():
    """sha256 of the whole table file, hex: compare with TABLE_SHA256 in a boot self-test."""
    import hashlib
    from binascii import hexlify

    f = _open()
    f.seek(0)
    h = hashlib.sha256()
    chunk = bytearray(512)
    n = f.readinto(chunk)
    while n:
        h.update(chunk if n == 512 else chunk[:n])  # no garbage per chunk
        n = f.readinto(chunk)
    return hexlify(h.digest()).decode()


def signed_digits(k):
    """k (0 <= k < 2^256) as 43 signed 6-bit digits, least significant first."""
    out = []
    for _ in range(NWIN):
        d = k & _MASK
        k >>= _W
        if d > _HALF:
            d -= _FULL
            k += 1
        out.append(d)
    return out


def _entry(f, buf, window, digit):
    f.seek(8 + (window * _HALF + digit - 1) * _ENTRY)
    if f.readinto(buf) != _ENTRY:
        raise TableError("secp256k1 table is truncated")
    return int.from_bytes(buf[:32], "big"), int.from_bytes(buf[32:], "big")


def mul_g_steps(k, windows_per_step):
    """Generator: k*G as a Jacobian point (its return value), yielding False every
    `windows_per_step` table additions."""
    f = _open()
    buf = bytearray(_ENTRY)
    acc = _ec.INFINITY
    window = 0
    done = 0
    for d in signed_digits(k):
        if d > 0:
            x, y = _entry(f, buf, window, d)
            acc = _ec.add_affine(acc, x, y)
            done += 1
        elif d < 0:
            x, y = _entry(f, buf, window, -d)
            acc = _ec.add_affine(acc, x, _ec.P - y)
            done += 1
        window += 1
        if done == windows_per_step:
            done = 0
            yield False
    return acc


def mul_g(k):
    """k*G as a Jacobian point, in one go."""
    return _ec.run_to_end(mul_g_steps(k, 1 << 30))
