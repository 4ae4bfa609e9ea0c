# Deterministic test records for the journal tests (same bytes as hil_tests/firmware/records.py).
import hashlib

from sgcore.reading import Reading, encode_body

_MID = b"M" * 16


def make(seq, prev_hash):
    r = Reading(_MID, seq, prev_hash, 1000 + seq * 60, 1060 + seq * 60, seq * 10, seq, 10, 1)
    body = encode_body(r)
    return body + hashlib.sha256(body).digest() * 2


def chain(journal, n):
    """Append n records continuing journal's chain; returns the last seq appended."""
    for _ in range(n):
        seq = journal.last_seq() + 1
        journal.append(make(seq, journal.last_hash()))
    return journal.last_seq()
