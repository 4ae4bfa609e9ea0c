"""Build a fixed-base table file on the device itself, a bounded slice per `step()`.

- `TableBuilder(path)`: G's table, for an image that ships without secp256k1_g.bin (tools/build.py
  normally copies it next to the modules). At first boot the firmware writes it to flash from its
  main loop, then checks it and points sgcore at it:

      builder = TableBuilder("/flash/secp256k1_g.bin")
      while not builder.step(): ...        # main loop; ~3 G fuel in ~6,500 steps
      secp256k1_table.use_table("/flash/secp256k1_g.bin")
      assert secp256k1_table.table_digest() == secp256k1_table.TABLE_SHA256

  The result is byte for byte the file of tools/gen_secp256k1_table.py.
- `KeyTableBuilder(path, pubkey)`: the table of one public key (the issuer's), the layout of
  sgcore.secp256k1_keytable; tools/provision.py runs the same code on the host.

The header is written last, so a power cut leaves a file that is refused (TableError) and the
builder simply runs again.
"""

import hashlib

from sgcore import secp256k1_arith as _ec
from sgcore import secp256k1_keytable as _keytable
from sgcore import secp256k1_table as _table
from sgcore.compat import const

# Work per step, sized for a meter that builds its issuer table while it runs: every step stays
# well under 1.5 M fuel and leaves under ~8 KB of garbage (hil_tests/firmware/test_issuer_table.py).
_CHUNK = const(16)  # points made affine together (one inversion)
_ENTRY = const(64)  # bytes of one affine point, x || y
_STEP_POINTS = const(2)  # points made affine per step (~0.25 M fuel, ~3.8 KB each)
_STEP_SQUARINGS = const(4)  # the key's square root (its y), squarings per step


class TableBuilder:
    """Writes G's table to `path`: `step()` until True."""

    __slots__ = ("done", "_steps")

    def __init__(self, path):
        self.done = False
        self._steps = self._run(path)

    def step(self):
        return next(self._steps)

    def _run(self, path):
        yield from _file_steps(path, _table.HEADER, _ec.GX, _ec.GY, 8, _table.NWIN, None)
        self.done = True
        while True:
            yield True


class KeyTableBuilder:
    """Writes the table of `pubkey` (33 or 65 bytes, or a PublicKey) to `path`: `step()` until
    True. Then `sgcore.secp256k1_keytable.use_key_table(path)` and verifications by that key
    use it."""

    __slots__ = ("done", "_steps")

    def __init__(self, path, pubkey):
        self.done = False
        self._steps = self._run(path, pubkey)

    def step(self):
        return next(self._steps)

    def close(self):
        """Abandon the build (its file is closed, the header never written)."""
        self._steps.close()

    def _run(self, path, pubkey):
        from sgcore import secp256k1 as _secp

        if not isinstance(pubkey, _secp.PublicKey):  # a square root, step-wise; on the curve
            pubkey = yield from _secp._parse_steps(pubkey, _STEP_SQUARINGS)
            yield False
        h = hashlib.sha256()
        head = _keytable.MAGIC + bytes((_keytable.KEY_W, _keytable.KEY_NWIN, 0, 0))
        head += pubkey.x.to_bytes(32, "big") + pubkey.y.to_bytes(32, "big")
        yield from _file_steps(
            path, head, pubkey.x, pubkey.y, _keytable.KEY_W, _keytable.KEY_NWIN, h
        )
        self.done = True
        while True:
            yield True


def _file_steps(path, header, x, y, w, nwin, h):
    """Generator: writes the table of (x, y) after a placeholder header; then the header, with
    the sha256 of the entries appended when `h` is given. The entries go out a chunk at a time
    through one buffer, allocated here once."""
    size = len(header) + (32 if h is not None else 0)
    buf = memoryview(bytearray(_CHUNK * _ENTRY))
    f = open(path, "wb")
    try:
        f.write(bytes(size))  # the real header goes last
        for _ in range(nwin):
            last = yield from _window_steps(f, buf, x, y, 1 << (w - 1), h)
            # next window's base: 2^w * base = 2 * (2^(w-1) * base), the window's last entry
            base = _ec.double((last[0], last[1], 1))
            yield False
            z = yield from _ec.inverse_steps(base[2], _ec.P, 48)
            zz = z * z % _ec.P
            x, y = base[0] * zz % _ec.P, base[1] * zz * z % _ec.P
            yield False
        f.seek(0)
        f.write(header if h is None else header + h.digest())
    finally:
        f.close()


def _window_steps(f, buf, x, y, digits, h):
    """Generator: writes d * (x, y) for d = 1..digits, affine; returns the last one."""
    acc = (x, y, 1)
    d = 1
    while d <= digits:
        jac = [acc]
        while len(jac) < _CHUNK and d + len(jac) <= digits:
            acc = _ec.add_affine(acc, x, y)
            jac.append(acc)
            yield False  # an addition: ~0.4 M fuel, ~6 KB of garbage
        points = yield from _ec.affine_steps(jac, _STEP_POINTS)
        n = 0
        for p in points:
            buf[n : n + 32] = p[0].to_bytes(32, "big")
            buf[n + 32 : n + _ENTRY] = p[1].to_bytes(32, "big")
            n += _ENTRY
        f.write(buf[:n])
        if h is not None:
            h.update(buf[:n])
        yield False
        d += len(jac)
        last = points[-1]
        if d <= digits:
            acc = _ec.add_affine(acc, x, y)  # the next chunk's first point
            yield False
    return last
