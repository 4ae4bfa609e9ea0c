"""Generate firmware/lib/sgcore/secp256k1_g.bin, the fixed-base table for sgcore.secp256k1.

Layout (docs/crypto.md): an 8-byte header b"SGGT", window width W, window count NWIN, two
zero bytes; then for window i = 0..NWIN-1 and digit d = 1..2^(W-1) the affine point
d * 2^(W*i) * G as x || y, 32 bytes each, big-endian. Entry (i, d) is at 8 + 64 * (i * 2^(W-1) + d - 1).

Plain CPython integers with affine formulas, independent of the code the table serves.

    uv run python -m tools.gen_secp256k1_table [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
G = (
    0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
)
W = 8
NWIN = (256 + W) // W  # signed digits of a 256-bit scalar carry into one extra bit
MAGIC = b"SGGT"
OUT = Path(__file__).resolve().parent.parent / "firmware" / "lib" / "sgcore" / "secp256k1_g.bin"

Point = tuple[int, int]


def _add(p: Point, q: Point) -> Point:
    if p == q:
        lam = 3 * p[0] * p[0] * pow(2 * p[1], -1, P) % P
    else:
        lam = (q[1] - p[1]) * pow(q[0] - p[0], -1, P) % P
    x = (lam * lam - p[0] - q[0]) % P
    return x, (lam * (p[0] - x) - p[1]) % P


def build() -> bytes:
    out = bytearray(MAGIC + bytes([W, NWIN, 0, 0]))
    base = G
    for _ in range(NWIN):
        point = base
        for digit in range(1, 2 ** (W - 1) + 1):
            if digit > 1:
                point = _add(point, base)
            out += point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")
        for _ in range(W):
            base = _add(base, base)
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only compare with the checked-in file"
    )
    args = parser.parse_args(argv)
    data = build()
    if args.check:
        ok = OUT.exists() and OUT.read_bytes() == data
        print(f"{OUT}: {'up to date' if ok else 'STALE'}")
        return 0 if ok else 1
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
