"""RFC 6962 Merkle trees: roots, audit paths and their offline check."""

from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root_of_hashes(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def root(leaves: list[bytes]) -> bytes:
    """Merkle tree hash of `leaves` (raw data, hashed as leaves here).

    Computed level by level: adjacent pairs are hashed and an unpaired last node moves up as it
    is, which gives RFC 6962's tree (its left subtrees are complete) without recursion.
    """
    if not leaves:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + d).digest() for d in leaves]
    while len(level) > 1:
        paired = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _path(hashes: list[bytes], index: int) -> list[bytes]:
    if len(hashes) <= 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return _path(hashes[:k], index) + [_root_of_hashes(hashes[k:])]
    return _path(hashes[k:], index - k) + [_root_of_hashes(hashes[:k])]


def audit_path(leaves: list[bytes], index: int) -> list[bytes]:
    """Sibling hashes from leaf `index` up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    return _path([leaf_hash(d) for d in leaves], index)


def root_from_path(data: bytes, index: int, count: int, path: list[bytes]) -> bytes | None:
    """Recompute the root from a leaf and its audit path (RFC 9162 §2.1.3.2); None if inconsistent."""
    if not 0 <= index < count:
        return None
    fn, sn = index, count - 1
    h = leaf_hash(data)
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            h = node_hash(sibling, h)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            h = node_hash(h, sibling)
        fn >>= 1
        sn >>= 1
    return h if sn == 0 else None
