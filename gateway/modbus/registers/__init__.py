"""Register tables, one module per meter model. To add a model: write `registers/<model>.py`
with a `REGISTER_MAP = RegisterMap(...)` and add it to MODELS below."""

from __future__ import annotations

from gateway.modbus.registers import esp32_meter, sdm120, sdm630
from gateway.modbus.regmap import RegisterMap

MODELS: dict[str, RegisterMap] = {
    "sdm630": sdm630.REGISTER_MAP,
    "sdm120": sdm120.REGISTER_MAP,
    "esp32_meter": esp32_meter.REGISTER_MAP,
}
