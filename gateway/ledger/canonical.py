"""Canonical JSON: the exact bytes that are hashed and signed.

`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)` encoded as UTF-8
(so plain ASCII). Only dicts with string keys, lists, strings, ints and bools are allowed: no
floats (amounts are integer millisatoshi), no None. Binary values travel as lowercase hex strings.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable
from typing import Any

from gateway.ledger.errors import TxRejected

MAX_DEPTH = 8
# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True), built once
ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _c_encoder() -> Callable[[Any], str]:
    """ENCODER.encode without building a new C encoder on every call (what JSONEncoder.encode
    does): one `_json.make_encoder` kept for the process, the same bytes (no circular-reference
    markers: `_check` bounds the depth first). Falls back to ENCODER.encode without _json."""
    make = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed: CPython's _json
    if make is None:
        return ENCODER.encode
    chunks = make(
        None, None, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True
    )
    return lambda value: "".join(chunks(value, 0))


encode_checked = _c_encoder()  # canonical text of a value `_check` already accepted


_INT_MIN, _INT_MAX = -(2**63), 2**63


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TxRejected("malformed", "nested too deeply")
    if depth == MAX_DEPTH:
        return _check_other(value, depth)  # its items would be nested too deeply
    t = type(value)
    if t is dict:
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                raise TxRejected("malformed", "object keys must be strings")
        items = value.values()
    elif t is list:
        items = value
    else:
        return _check_other(value, depth)
    # the items of a list or object inline (a commitment state lists thousands of HTLCs): plain
    # strings and ints are checked here, anything else as a value of its own
    for item in items:
        ti = type(item)
        if ti is str:
            continue
        if ti is int:
            if not _INT_MIN <= item < _INT_MAX:
                raise TxRejected("malformed", "integer out of 64-bit range")
            continue
        _check(item, depth + 1)
    return None


def _check_other(value: Any, depth: int) -> None:
    if isinstance(value, bool) or isinstance(value, str):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value < _INT_MAX:
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
    return encode_checked(value).encode()


def digest(value: Any) -> bytes:
    """sha256 of the canonical encoding: the id of a transaction body or commitment state."""
    return hashlib.sha256(encode(value)).digest()
