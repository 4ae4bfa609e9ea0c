"""Modbus test rig: an emulated meter's register contents for a pymodbus server.

The serial cable is hil_tests.rig.wire.PtyWire: server on wire.a, gateway poller on wire.b.
"""

from __future__ import annotations

from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.modbus.decode import encode_register
from gateway.modbus.regmap import RegisterMap


def meter_context(regmap: RegisterMap, values: dict[str, float], unit: int = 1) -> SimDevice:
    """A pymodbus device (unit `unit`) holding `values` at the addresses of `regmap`: its own
    input and holding registers (a meter's two tables), addressed as in the requests. pymodbus'
    SimDevice; ModbusServerContext and its data blocks are deprecated (and printed so)."""
    size = max(r.address + r.width for r in regmap.registers) + 2
    ir, hr = [0] * size, [0] * size
    for reg in regmap.registers:
        words = encode_register(reg, values.get(reg.name, 0.0))
        target = ir if reg.function == "input" else hr
        target[reg.address : reg.address + reg.width] = words

    def block(words: list[int]) -> list[SimData]:
        return [SimData(address=0, values=words, datatype=DataType.REGISTERS)]

    # (coils, discrete inputs, holding registers, input registers); a meter has no bits
    bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS, readonly=True)]
    return SimDevice(id=unit, simdata=(bits, bits, block(hr), block(ir)))
