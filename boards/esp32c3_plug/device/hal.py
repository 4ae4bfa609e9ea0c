# HAL of the ESP32-C3 smart plug (Shelly Plug S Gen3: ESP32-C3, BL0942, relay; pin map in
# pins.csv): the same surface as every board; the ESP32 parts in boards/esp32_common. The plug meters with its
# BL0942 (config meter_source = "bl0942"); it has no S0 input and no RS-485 transceiver, so
# those parts of the surface are present but idle. Pins come from /board.json.
import json
import select

import machine
from esp32_hal import Esp32Board


class NoPulses:
    """The S0 input this board does not have: never a pulse."""

    def count(self):
        return 0


class NoLine:
    """An output that is not fitted (RS-485 DE): remembers its value, drives nothing."""

    def __init__(self):
        self._v = 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        return None

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0


class NoUart:
    """The RS-485 bus this board does not have: nothing arrives, writes go nowhere."""

    def any(self):
        return 0

    def read(self, n=256):
        return None

    def readinto(self, buf, n=None):
        return None

    def write(self, buf):
        return len(buf)


class RgbLed:
    """The plug's WS2812 ring as the status LED: white when on, dark when off."""

    def __init__(self, pin_no, count):
        import neopixel

        self._np = neopixel.NeoPixel(machine.Pin(pin_no, machine.Pin.OUT), count)
        self._v = 0
        self.value(0)

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        self._np.fill((32, 32, 32) if self._v else (0, 0, 0))
        self._np.write()
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class Board(Esp32Board):
    """The HAL surface every board exposes (see boards/hal_surface.py)."""

    board_id = "esp32c3_plug"

    def __init__(self):
        with open("/board.json") as f:
            info = json.load(f)
        pins = info["pins"]
        self.calibration = info["calibration"]
        self.relay = machine.Pin(pins["relay"], machine.Pin.OUT, value=0)
        self.led = RgbLed(pins["led"], pins["led_count"])
        self.rs485_de = NoLine()
        self.button = machine.Signal(
            pins["button"], machine.Pin.IN, machine.Pin.PULL_UP, invert=True
        )
        self.s0 = NoPulses()
        m = pins["meter_uart"]
        self.meter_uart = machine.UART(
            m["id"], baudrate=m["baudrate"], tx=m["tx"], rx=m["rx"], timeout=50
        )
        self.rs485_uart = NoUart()
        # sleep_ms wakes early when the BL0942 answers (the plug has no Modbus bus to watch)
        self._waker = select.poll()
        self._waker.register(self.meter_uart, select.POLLIN)
