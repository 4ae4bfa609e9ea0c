"""Register maps as data: one table per meter model, and the block reads that cover a table.

A table lists registers by address, data type, unit and scale. `plan_blocks` groups them into as
few reads as the model allows (contiguous or nearly so, at most `max_block` registers each), so a
poll is a handful of Modbus transactions rather than one per value.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import RegisterMapError

# data type -> number of 16-bit registers
WIDTHS = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
FUNCTIONS = ("input", "holding")  # FC 0x04 / FC 0x03


@dataclass(frozen=True)
class Register:
    name: str  # snake_case quantity name, e.g. "import_kwh"
    address: int  # 0-based protocol address (Eastron "30001" is 0x0000)
    dtype: str  # one of WIDTHS; multi-register values are big-endian words, high word first
    unit: str  # "V", "A", "W", "Hz", "kWh", "Wh", "" ...
    scale: float = 1.0  # value = raw * scale
    function: str = "input"

    @property
    def width(self) -> int:
        return WIDTHS[self.dtype]


@dataclass(frozen=True)
class RegisterMap:
    model: str
    registers: tuple[Register, ...]
    max_block: int = 40  # largest read the device answers (registers)
    max_gap: int = 8  # unused registers a block may span to save a transaction

    def __post_init__(self) -> None:
        names = set()
        for reg in self.registers:
            if reg.dtype not in WIDTHS:
                raise RegisterMapError(f"{self.model}.{reg.name}: unknown dtype {reg.dtype!r}")
            if reg.function not in FUNCTIONS:
                raise RegisterMapError(
                    f"{self.model}.{reg.name}: unknown function {reg.function!r}"
                )
            if not 0 <= reg.address <= 0xFFFF - reg.width + 1:
                raise RegisterMapError(f"{self.model}.{reg.name}: address out of range")
            if reg.width > self.max_block:
                raise RegisterMapError(f"{self.model}.{reg.name}: wider than max_block")
            if reg.name in names:
                raise RegisterMapError(f"{self.model}: duplicate register name {reg.name!r}")
            names.add(reg.name)


@dataclass(frozen=True)
class Block:
    """One Modbus read: `count` registers from `address` with one function code."""

    function: str
    address: int
    count: int
    registers: tuple[Register, ...]


def plan_blocks(regmap: RegisterMap) -> tuple[Block, ...]:
    """Group a table's registers into block reads (sorted by function then address)."""
    blocks: list[Block] = []
    ordered = sorted(regmap.registers, key=lambda r: (r.function, r.address))
    current: list[Register] = []
    for reg in ordered:
        if current:
            first, last = current[0], current[-1]
            end = reg.address + reg.width
            if (
                reg.function == first.function
                and reg.address >= last.address + last.width  # no overlap
                and reg.address - (last.address + last.width) <= regmap.max_gap
                and end - first.address <= regmap.max_block
            ):
                current.append(reg)
                continue
            blocks.append(_block(current))
        current = [reg]
    if current:
        blocks.append(_block(current))
    return tuple(blocks)


def _block(regs: list[Register]) -> Block:
    start = regs[0].address
    end = regs[-1].address + regs[-1].width
    return Block(regs[0].function, start, end - start, tuple(regs))
