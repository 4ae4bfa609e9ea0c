"""A public key's own fixed-base table on flash: the issuer's key is fixed, so a meter keeps
the multiples of it that a verification needs, as sgcore.secp256k1_table does for G.

Layout (docs/crypto.md): a 104-byte header b"SGQT", W = 6, NWIN = 43, two zero bytes, the key's
affine x and y (32 bytes each), the sha256 of the entries; then for window i = 0..42 and digit
d = 1..32 the affine point d * 2^(6 i) * Q as x || y, entry (i, d) at 104 + 64 (32 i + d - 1).
88,168 bytes. tools/provision.py writes it with the meter's config (it runs
sgcore.secp256k1_table_builder.KeyTableBuilder on the host); a meter can build it itself.

A table is used only for the key in its header, and only after a check once per boot
(`check_steps`, ~17 M fuel, part of the first verification): its entries must hash to the
header's digest and its first entry must be the key itself. A table that fails is refused for
good (until `use_key_table` is called again) and the verifier falls back to the slower
variable-base path, so a damaged table can cost speed, never make a bad signature pass.
"""

from sgcore import secp256k1_arith as _ec
from sgcore import secp256k1_table as _table
from sgcore.compat import const

MAGIC = b"SGQT"
KEY_W = const(6)
KEY_NWIN = const(43)
_HALF = const(32)
HEADER_LEN = const(104)
TABLE_SIZE = const(88168)  # 104 + 43 * 32 * 64
DEFAULT_PATH = "issuer.tbl"  # the flash root, next to config.json
_HASH_CHUNKS = const(12)  # 512-byte chunks hashed per step of the check (~1 M fuel)

_UNOPENED = const(0)
_ABSENT = const(1)
_REFUSED = const(2)  # damaged, cut short, or failed its check
_OPEN = const(3)
_state = [DEFAULT_PATH, None, _UNOPENED]  # path, the KeyTable when open, the status


class KeyTable:
    """An open key table file (use `table_for`): `x`, `y` of its key, `checked` once verified."""

    __slots__ = ("x", "y", "checked", "f")

    def __init__(self, f, x, y):
        self.f = f
        self.x = x
        self.y = y
        self.checked = False

    def digits(self, k):
        return _table.signed_digits(k, KEY_W, KEY_NWIN)

    def add_steps(self, acc, k, adds_per_step):
        """Generator: acc + k*Q (its return value); see secp256k1_table.add_digits_steps."""
        digits = self.digits(k)
        yield False  # the digits (~0.3 M fuel, ~5 KB) apart from the first additions
        acc = yield from _table.add_digits_steps(
            acc, self.f, HEADER_LEN, _HALF, digits, adds_per_step
        )
        return acc

    def check_steps(self):
        """Generator: True (its return value) if the entries hash to the header's digest and
        entry (0, 1) is the key; False refuses the table."""
        import hashlib

        f = self.f
        buf = bytearray(512)
        f.seek(HEADER_LEN - 32)
        if f.readinto(buf) < 96:
            return False
        want = bytes(buf[:32])
        if bytes(buf[32:96]) != self.x.to_bytes(32, "big") + self.y.to_bytes(32, "big"):
            return False  # entry (0, 1) must be 1 * Q
        h = hashlib.sha256()
        size = HEADER_LEN
        n = 1
        while n:
            yield False
            if self.f is None:
                return False  # refused meanwhile, by another verification's check
            if self.checked:
                return True  # another check of this table passed meanwhile
            f.seek(size)  # after every yield: another verification may have read the file
            for _ in range(_HASH_CHUNKS):
                n = f.readinto(buf)
                if not n:
                    break
                h.update(buf if n == 512 else buf[:n])
                size += n
        self.checked = size == TABLE_SIZE and h.digest() == want
        return self.checked


def use_key_table(path=DEFAULT_PATH):
    """Look for the key table at `path` from now on (a new or rebuilt table: checked again)."""
    if _state[1] is not None:
        _state[1].f.close()
    _state[0] = path
    _state[1] = None
    _state[2] = _UNOPENED


def refuse(table=None):
    """A table that failed its check (or, None, the one open, gone stale): never used again
    (until use_key_table)."""
    if table is None:
        table = _state[1]
    if table is not None and _state[1] is table:
        table.f.close()
        table.f = None  # a check still under way in another verification ends False
        _state[1] = None
        _state[2] = _REFUSED


def _file(path):
    try:
        return open(path, "rb")
    except OSError:
        return None


def _open():
    f = _file(_state[0])
    if f is None:
        _state[2] = _ABSENT
        return
    head = f.read(HEADER_LEN)
    t = None
    if len(head) == HEADER_LEN and head[:8] == MAGIC + bytes((KEY_W, KEY_NWIN, 0, 0)):
        t = KeyTable(f, int.from_bytes(head[8:40], "big"), int.from_bytes(head[40:72], "big"))
    if t is None or not _ec.is_on_curve(t.x, t.y):
        f.close()
        _state[2] = _REFUSED  # e.g. a build cut short by a power loss (its header is zeros)
        return
    _state[1] = t
    _state[2] = _OPEN


def table_for(pub):
    """The key table for `pub` (a PublicKey, or its 33/65-byte encoding), or None."""
    if _state[2] == _UNOPENED:
        _open()
    t = _state[1]
    if t is None:
        return None
    if isinstance(pub, (bytes, bytearray, memoryview)):
        if len(pub) == 33:
            same = pub[0] == 2 + (t.y & 1) and int.from_bytes(pub[1:], "big") == t.x
        else:
            same = len(pub) == 65 and pub[0] == 4 and int.from_bytes(pub[1:33], "big") == t.x
            same = same and int.from_bytes(pub[33:], "big") == t.y
    else:
        same = pub.x == t.x and pub.y == t.y
    return t if same else None


def stale_for(pub):
    """True when the table file is there but cannot serve `pub`: made for another key (the
    issuer's key was rotated), damaged or refused. A missing file is not stale."""
    if table_for(pub) is not None:
        return False
    return _state[2] != _ABSENT
