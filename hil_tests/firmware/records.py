"""The CPython twin of mpy/testrec.py: expected journal records and their chain hashes."""

from __future__ import annotations

import hashlib

from sgcore.reading import ZERO_HASH, Reading, encode_body

_MID = b"M" * 16


def make(seq: int, prev_hash: bytes) -> bytes:
    r = Reading(_MID, seq, prev_hash, 1000 + seq * 60, 1060 + seq * 60, seq * 10, seq, 10, 1)
    body = encode_body(r)
    return body + hashlib.sha256(body).digest() * 2


def expected_chain(n: int) -> list[bytes]:
    """Records 0..n-1 as the test helpers build them."""
    out: list[bytes] = []
    prev = ZERO_HASH
    for seq in range(n):
        rec = make(seq, prev)
        out.append(rec)
        prev = hashlib.sha256(rec).digest()
    return out
