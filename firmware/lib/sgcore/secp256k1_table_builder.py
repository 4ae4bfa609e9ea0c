"""Build the fixed-base table file on the device itself, a bounded slice per `step()`.

For an image that ships without secp256k1_g.bin (tools/build.py normally copies it next to the
modules): at first boot the firmware writes the table to flash, step by step from its main
loop, then checks it and points sgcore at it:

    builder = TableBuilder("/flash/secp256k1_g.bin")
    while not builder.step(): ...        # main loop; ~0.9 G fuel in ~600 steps
    secp256k1_table.use_table("/flash/secp256k1_g.bin")
    assert secp256k1_table.table_digest() == secp256k1_table.TABLE_SHA256

The header is written last, so a power cut leaves a file that `use_table` rejects
(TableError) and the builder simply runs again. The result is byte for byte the file of
tools/gen_secp256k1_table.py.
"""

from sgcore import secp256k1_arith as _ec
from sgcore import secp256k1_table as _table
from sgcore.compat import const

_DIGITS = const(32)  # entries per window: d = 1..32
_STEP_ADDS = const(4)  # point additions per step
_STEP_POINTS = const(4)  # normalised (affine) points per step


class TableBuilder:
    """Writes the table to `path`: `step()` until True."""

    __slots__ = ("done", "_steps")

    def __init__(self, path):
        self.done = False
        self._steps = self._run(path)

    def step(self):
        return next(self._steps)

    def _run(self, path):
        f = open(path, "wb")
        try:
            f.write(b"\x00" * len(_table.HEADER))  # the real header goes last
            x, y = _ec.GX, _ec.GY
            for _ in range(_table.NWIN):
                points = yield from _window_steps(x, y)
                buf = bytearray()
                for p in points:
                    buf += p[0].to_bytes(32, "big") + p[1].to_bytes(32, "big")
                f.write(buf)
                yield False
                # next window's base: 2^6 * base = 2 * (32 * base), the window's last entry
                base = _ec.double((points[-1][0], points[-1][1], 1))
                z = yield from _ec.inverse_steps(base[2], _ec.P, 48)
                zz = z * z % _ec.P
                x, y = base[0] * zz % _ec.P, base[1] * zz * z % _ec.P
            f.seek(0)
            f.write(_table.HEADER)
        finally:
            f.close()
        self.done = True
        while True:
            yield True


def _window_steps(x, y):
    """Generator: [(x, y) of d * (x, y) for d = 1..32], affine (its return value)."""
    jac = [(x, y, 1)]
    for d in range(2, _DIGITS + 1):
        jac.append(_ec.add_affine(jac[-1], x, y))
        if d % _STEP_ADDS == 0:
            yield False
    # Montgomery's trick: one inversion for the 32 Z's.
    prefix = [jac[0][2]]
    for p in jac[1:]:
        prefix.append(_ec.fmul(prefix[-1], p[2]))
    inv = yield from _ec.inverse_steps(prefix[-1], _ec.P, 48)
    out = [None] * _DIGITS
    i = _DIGITS - 1
    while i >= 0:
        zi = _ec.fmul(inv, prefix[i - 1]) if i else inv
        inv = _ec.fmul(inv, jac[i][2])
        zz = _ec.fmul(zi, zi)
        out[i] = (_ec.fmul(jac[i][0], zz) % _ec.P, _ec.fmul(_ec.fmul(jac[i][1], zz), zi) % _ec.P)
        if i % _STEP_POINTS == 0:
            yield False
        i -= 1
    return out
