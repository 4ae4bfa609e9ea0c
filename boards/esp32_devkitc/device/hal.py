# HAL of the ESP32-DevKitC meter board: the same surface as boards/emulated/device/hal.py. The
# ESP32 parts every board shares are in boards/esp32_common/device/esp32_hal.py; this module wires
# the DevKitC's pins, from /board.json (see pins.csv): S0 input, BL0942 UART, RS-485 Modbus bus.
import json
import select

import machine
from esp32_hal import Esp32Board


class PulseCounter:
    """Counts falling edges of the S0 line in an IRQ (S0 pulses are >= 30 ms wide, <= ~20 Hz)."""

    def __init__(self, pin_no):
        self._n = 0
        self._pin = machine.Pin(pin_no, machine.Pin.IN)
        self._pin.irq(trigger=machine.Pin.IRQ_FALLING, handler=self._edge)

    def _edge(self, _pin):
        self._n += 1

    def count(self):
        return self._n


class Board(Esp32Board):
    """The HAL surface every board exposes (see boards/hal_surface.py)."""

    board_id = "esp32_devkitc"

    def __init__(self):
        with open("/board.json") as f:
            info = json.load(f)
        pins = info["pins"]
        self.calibration = info["calibration"]
        self.relay = machine.Pin(pins["relay"], machine.Pin.OUT, value=0)
        self.led = machine.Pin(pins["led"], machine.Pin.OUT, value=0)
        self.rs485_de = machine.Pin(pins["rs485_de"], machine.Pin.OUT, value=0)
        self.button = machine.Signal(
            pins["button"], machine.Pin.IN, machine.Pin.PULL_UP, invert=True
        )
        self.s0 = PulseCounter(pins["s0"])
        m, r = pins["meter_uart"], pins["rs485_uart"]
        self.meter_uart = machine.UART(
            m["id"], baudrate=m["baudrate"], tx=m["tx"], rx=m["rx"], timeout=50
        )
        self.rs485_uart = machine.UART(
            r["id"], baudrate=r["baudrate"], tx=r["tx"], rx=r["rx"], timeout=0
        )
        # sleep_ms wakes early when a Modbus request starts arriving (as the emulated board does)
        self._waker = select.poll()
        self._waker.register(self.rs485_uart, select.POLLIN)
