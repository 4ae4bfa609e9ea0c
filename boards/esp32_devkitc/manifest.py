# Freeze the meter firmware into an ESP32_GENERIC MicroPython image:
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=<repo>/boards/esp32_devkitc/manifest.py
# (tools.flash can also copy the .mpy image from tools.build onto a stock MicroPython instead.)
metadata(description="Seamless Grid meter on ESP32-DevKitC", version="0.1.0")
include("$(PORT_DIR)/boards/manifest.py")
module("esp32_hal.py", base_path="../esp32_common/device")  # shared ESP32 HAL parts
module("hal.py", base_path="device")
freeze("../../firmware/lib", opt=3)  # firmware modules and the sgcore package
