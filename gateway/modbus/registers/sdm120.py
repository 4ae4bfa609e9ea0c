"""Eastron SDM120 (single-phase) input registers, FC 0x04, IEEE-754 float32, high word first.

Source: Eastron "SDM120 Modbus Protocol"; addresses coincide with the SDM630's phase-1 registers.
"""

from gateway.modbus.regmap import Register, RegisterMap

REGISTER_MAP = RegisterMap(
    model="sdm120",
    max_block=40,
    registers=(
        Register("voltage_l1", 0x0000, "float32", "V"),
        Register("current_l1", 0x0006, "float32", "A"),
        Register("power", 0x000C, "float32", "W"),
        Register("power_factor", 0x001E, "float32", ""),
        Register("frequency", 0x0046, "float32", "Hz"),
        Register("import_kwh", 0x0048, "float32", "kWh"),
        Register("export_kwh", 0x004A, "float32", "kWh"),
        Register("total_kwh", 0x0156, "float32", "kWh"),
    ),
)
