"""Turn the 16-bit words of a block read into named values. Pure; raises RegisterMapError only."""

from __future__ import annotations

import math
import struct

from gateway.errors import RegisterMapError
from gateway.modbus.regmap import Block, Register

_STRUCT = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}


def decode_register(reg: Register, words: list[int] | tuple[int, ...]) -> float:
    if len(words) != reg.width:
        raise RegisterMapError(f"{reg.name}: expected {reg.width} words, got {len(words)}")
    for w in words:
        if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 0xFFFF:
            raise RegisterMapError(f"{reg.name}: word {w!r} is not a 16-bit value")
    raw = struct.unpack(_STRUCT[reg.dtype], struct.pack(f">{len(words)}H", *words))[0]
    if isinstance(raw, float) and not math.isfinite(raw):
        raise RegisterMapError(f"{reg.name}: not a finite number")
    return raw * reg.scale


def decode_block(block: Block, words: list[int] | tuple[int, ...]) -> dict[str, float]:
    """Values of every register in `block`, given the `block.count` words the device returned.

    A value that cannot be decoded (NaN from a meter, wrong length) raises RegisterMapError: the
    caller counts the block as failed and keeps the previous values; nothing is half-applied.
    """
    if len(words) != block.count:
        raise RegisterMapError(
            f"block @0x{block.address:04X}: expected {block.count} registers, got {len(words)}"
        )
    values: dict[str, float] = {}
    for reg in block.registers:
        offset = reg.address - block.address
        values[reg.name] = decode_register(reg, words[offset : offset + reg.width])
    return values


def encode_register(reg: Register, value: float) -> list[int]:
    """The words a device holds for `value` (used by emulated meters in tests and the bench)."""
    raw: float | int = value / reg.scale
    if reg.dtype != "float32":
        raw = int(round(raw))
    packed = struct.pack(_STRUCT[reg.dtype], raw)
    return list(struct.unpack(f">{reg.width}H", packed))
