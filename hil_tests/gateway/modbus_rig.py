"""Modbus test rig: an emulated meter's register contents for a pymodbus server.

The serial cable is hil_tests.rig.wire.PtyWire: server on wire.a, gateway poller on wire.b.
"""

from __future__ import annotations

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext

from gateway.modbus.decode import encode_register
from gateway.modbus.regmap import RegisterMap


def meter_context(
    regmap: RegisterMap, values: dict[str, float], unit: int = 1
) -> ModbusServerContext:
    """A pymodbus server context holding `values` at the addresses of `regmap`."""
    size = max(r.address + r.width for r in regmap.registers) + 2
    ir, hr = [0] * size, [0] * size
    for reg in regmap.registers:
        words = encode_register(reg, values.get(reg.name, 0.0))
        target = ir if reg.function == "input" else hr
        target[reg.address : reg.address + reg.width] = words
    # pymodbus device contexts address data blocks from 1 (protocol address 0 -> index 1)
    device = ModbusDeviceContext(
        ir=ModbusSequentialDataBlock(1, ir), hr=ModbusSequentialDataBlock(1, hr)
    )
    return ModbusServerContext(devices={unit: device}, single=False)
