# Freeze the meter firmware into an ESP32_GENERIC_C3 MicroPython image (RISC-V, rv32imc):
#   make -C ports/esp32 BOARD=ESP32_GENERIC_C3 FROZEN_MANIFEST=<repo>/boards/esp32c3_plug/manifest.py
# (`sgrid flash --board esp32c3_plug` can also copy the .mpy image from `sgrid build` onto a
# stock ESP32_GENERIC_C3 MicroPython instead.)
metadata(
    description="Seamless Grid meter on an ESP32-C3 smart plug (BL0942, relay)", version="0.1.0"
)
include("$(PORT_DIR)/boards/manifest.py")
module("esp32_hal.py", base_path="../esp32_common/device")  # shared ESP32 HAL parts
module("hal.py", base_path="device")
freeze("../../firmware/lib", opt=3)  # firmware modules and the sgcore package
