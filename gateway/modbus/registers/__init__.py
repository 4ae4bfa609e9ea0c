"""Register tables, one module per meter model. To add a model: write `registers/<model>.py`
with a `REGISTER_MAP = RegisterMap(...)` and add it to MODELS below."""

from __future__ import annotations

from gateway.modbus.registers import sdm120, sdm630, sg_esp32_meter
from gateway.modbus.regmap import RegisterMap

MODELS: dict[str, RegisterMap] = {
    "sdm630": sdm630.REGISTER_MAP,
    "sdm120": sdm120.REGISTER_MAP,
    "sg_esp32_meter": sg_esp32_meter.REGISTER_MAP,  # our meter (sgcore/modbus_map.py)
    "esp32_meter": sg_esp32_meter.REGISTER_MAP,  # the same, by its short name
}
