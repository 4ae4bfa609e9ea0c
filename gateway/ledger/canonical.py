"""Canonical JSON: the exact bytes that are hashed and signed.

`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)` encoded as UTF-8
(so plain ASCII). Only dicts with string keys, lists, strings, ints and bools are allowed: no
floats (amounts are integer millisatoshi), no None. Binary values travel as lowercase hex strings.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gateway.ledger.errors import TxRejected

MAX_DEPTH = 8
# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True), built once
ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TxRejected("malformed", "nested too deeply")
    if isinstance(value, bool) or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise TxRejected("malformed", "integer out of 64-bit range")
        return
    if isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TxRejected("malformed", "object keys must be strings")
            _check(item, depth + 1)
        return
    raise TxRejected("malformed", f"type {type(value).__name__} is not allowed")


def encode(value: Any) -> bytes:
    """Canonical bytes of `value`; raises TxRejected("malformed") for disallowed types."""
    _check(value, 0)
    return ENCODER.encode(value).encode()


def digest(value: Any) -> bytes:
    """sha256 of the canonical encoding: the id of a transaction body or commitment state."""
    return hashlib.sha256(encode(value)).digest()
