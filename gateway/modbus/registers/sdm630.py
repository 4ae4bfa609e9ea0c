"""Eastron SDM630 (three-phase) input registers, FC 0x04, IEEE-754 float32, high word first.

Source: Eastron "SDM630 Modbus Protocol" (input register table 30001..); the same addresses are
used by compatible meters and by ESPHome's `sdm_meter_registers.h`.
"""

from gateway.modbus.regmap import Register, RegisterMap

REGISTER_MAP = RegisterMap(
    model="sdm630",
    max_block=40,
    registers=(
        Register("voltage_l1", 0x0000, "float32", "V"),
        Register("voltage_l2", 0x0002, "float32", "V"),
        Register("voltage_l3", 0x0004, "float32", "V"),
        Register("current_l1", 0x0006, "float32", "A"),
        Register("current_l2", 0x0008, "float32", "A"),
        Register("current_l3", 0x000A, "float32", "A"),
        Register("power_l1", 0x000C, "float32", "W"),
        Register("power_l2", 0x000E, "float32", "W"),
        Register("power_l3", 0x0010, "float32", "W"),
        Register("power_factor_l1", 0x001E, "float32", ""),
        Register("power_factor_l2", 0x0020, "float32", ""),
        Register("power_factor_l3", 0x0022, "float32", ""),
        Register("power", 0x0034, "float32", "W"),  # total system power
        Register("power_factor", 0x003E, "float32", ""),
        Register("frequency", 0x0046, "float32", "Hz"),
        Register("import_kwh", 0x0048, "float32", "kWh"),
        Register("export_kwh", 0x004A, "float32", "kWh"),
        Register("total_kwh", 0x0156, "float32", "kWh"),
    ),
)
