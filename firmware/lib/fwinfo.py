# Firmware identity, printed in the boot banner and served over Modbus/MQTT.
FIRMWARE_VERSION = "0.1.0"
FIRMWARE_NAME = "seamless-grid-meter"
