"""BOLT #1 messages: u16 type + payload, with message layouts described as data.

Spec: https://github.com/lightning/bolts/blob/master/01-messaging.md

Adding a message is one data entry:

    TABLE.register("update_fee", 134, [("channel_id", "bytes32"), ("feerate_per_kw", "u32")])

then `TABLE.encode("update_fee", channel_id=..., feerate_per_kw=...)` and `TABLE.decode(raw)`.
Field types: u8 u16 u32 u64 (big-endian ints), bytes32 bytes33 bytes64 (fixed), varbytes
(u16 length + bytes). Per BOLT #1, a reader ignores bytes after the fields it knows (kept in
`Message.tail`), and on an unknown type gets `UnknownMessageError`: if its type is odd the
message may be ignored, if even the connection must be failed (`must_close()`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.ln.errors import UnknownMessageError, WireError

MAX_MESSAGE_LEN = 65535

_INTS = {"u8": ">B", "u16": ">H", "u32": ">I", "u64": ">Q"}
_FIXED = {"bytes32": 32, "bytes33": 33, "bytes64": 64}
FIELD_TYPES = frozenset(_INTS) | frozenset(_FIXED) | {"varbytes"}


@dataclass(frozen=True)
class MessageSpec:
    name: str
    type_num: int
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Message:
    name: str
    type_num: int
    fields: Mapping[str, Any]
    tail: bytes = b""  # bytes past the known fields (extensions), ignored per BOLT #1

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def must_close(type_num: int) -> bool:
    """BOLT #1 "it's OK to be odd": an unknown even type means the peer needs what we lack."""
    return type_num % 2 == 0


@dataclass
class MessageTable:
    """Message layouts by name and by type number."""

    by_name: dict[str, MessageSpec] = field(default_factory=dict)
    by_type: dict[int, MessageSpec] = field(default_factory=dict)

    def register(self, name: str, type_num: int, fields: Iterable[tuple[str, str]]) -> MessageSpec:
        spec = MessageSpec(name, type_num, tuple((n, t) for n, t in fields))
        if not 0 <= type_num <= 0xFFFF:
            raise WireError(f"type {type_num} of {name!r} does not fit in u16")
        if name in self.by_name or type_num in self.by_type:
            raise WireError(f"message {name!r} / type {type_num} is already registered")
        names = [n for n, _ in spec.fields]
        if len(set(names)) != len(names):
            raise WireError(f"message {name!r} repeats a field name")
        for fname, ftype in spec.fields:
            if ftype not in FIELD_TYPES:
                raise WireError(f"field {name}.{fname} has unknown type {ftype!r}")
        self.by_name[name] = spec
        self.by_type[type_num] = spec
        return spec

    def copy(self) -> MessageTable:
        return MessageTable(dict(self.by_name), dict(self.by_type))

    def encode(self, name: str, **values: Any) -> bytes:
        spec = self.by_name.get(name)
        if spec is None:
            raise WireError(f"unknown message name {name!r}")
        extra = set(values) - {n for n, _ in spec.fields}
        if extra:
            raise WireError(f"{name}: unexpected fields {sorted(extra)}")
        out = bytearray(struct.pack(">H", spec.type_num))
        for fname, ftype in spec.fields:
            if fname not in values:
                raise WireError(f"{name}: missing field {fname!r}")
            out += _encode_field(name, fname, ftype, values[fname])
        if len(out) > MAX_MESSAGE_LEN:
            raise WireError(f"{name}: {len(out)} bytes exceeds the 65535-byte message limit")
        return bytes(out)

    def decode(self, data: bytes) -> Message:
        if len(data) < 2:
            raise WireError("message shorter than its 2-byte type")
        if len(data) > MAX_MESSAGE_LEN:
            raise WireError("message longer than 65535 bytes")
        (type_num,) = struct.unpack_from(">H", data)
        spec = self.by_type.get(type_num)
        if spec is None:
            raise UnknownMessageError(type_num)
        pos = 2
        values: dict[str, Any] = {}
        for fname, ftype in spec.fields:
            values[fname], pos = _decode_field(spec.name, fname, ftype, data, pos)
        return Message(spec.name, type_num, values, bytes(data[pos:]))


def _encode_field(msg: str, fname: str, ftype: str, value: Any) -> bytes:
    where = f"{msg}.{fname}"
    if ftype in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WireError(f"{where} must be an int")
        try:
            return struct.pack(_INTS[ftype], value)
        except struct.error as exc:
            raise WireError(f"{where}={value} does not fit {ftype}") from exc
    if not isinstance(value, bytes | bytearray):
        raise WireError(f"{where} must be bytes")
    if ftype in _FIXED:
        if len(value) != _FIXED[ftype]:
            raise WireError(f"{where} must be {_FIXED[ftype]} bytes, got {len(value)}")
        return bytes(value)
    if len(value) > 0xFFFF:
        raise WireError(f"{where} is longer than 65535 bytes")
    return struct.pack(">H", len(value)) + bytes(value)


def _decode_field(msg: str, fname: str, ftype: str, data: bytes, pos: int) -> tuple[Any, int]:
    where = f"{msg}.{fname}"
    if ftype in _INTS:
        size = struct.calcsize(_INTS[ftype])
        if pos + size > len(data):
            raise WireError(f"{where}: message truncated")
        return struct.unpack_from(_INTS[ftype], data, pos)[0], pos + size
    if ftype in _FIXED:
        size = _FIXED[ftype]
    else:
        if pos + 2 > len(data):
            raise WireError(f"{where}: message truncated in length prefix")
        (size,) = struct.unpack_from(">H", data, pos)
        pos += 2
    if pos + size > len(data):
        raise WireError(f"{where}: message truncated")
    return bytes(data[pos : pos + size]), pos + size


# BOLT #1 setup and control messages. Other modules register theirs on TABLE (or a copy).
TABLE = MessageTable()
TABLE.register("warning", 1, [("channel_id", "bytes32"), ("data", "varbytes")])
TABLE.register("init", 16, [("globalfeatures", "varbytes"), ("features", "varbytes")])
TABLE.register("error", 17, [("channel_id", "bytes32"), ("data", "varbytes")])
TABLE.register("ping", 18, [("num_pong_bytes", "u16"), ("ignored", "varbytes")])
TABLE.register("pong", 19, [("ignored", "varbytes")])
