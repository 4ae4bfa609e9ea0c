"""The Seamless Grid ESP32 meter's own Modbus map (PROVISIONAL until the firmware defines it).

Holding registers, FC 0x03, integers so the meter needs no float packing. Change this table to
match the firmware's; nothing else in the gateway depends on these addresses.
"""

from gateway.modbus.regmap import Register, RegisterMap

REGISTER_MAP = RegisterMap(
    model="esp32_meter",
    max_block=32,
    registers=(
        Register("import_wh", 0x0000, "uint32", "Wh", function="holding"),
        Register("export_wh", 0x0002, "uint32", "Wh", function="holding"),
        Register("power", 0x0004, "int32", "W", function="holding"),
        Register("voltage_l1", 0x0006, "uint16", "V", scale=0.1, function="holding"),
        Register("relay", 0x0007, "uint16", "", function="holding"),
        Register("credit_wh", 0x0008, "int32", "Wh", function="holding"),
        Register("seq", 0x000A, "uint32", "", function="holding"),
    ),
)
