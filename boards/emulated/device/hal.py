# HAL of the emulated ESP32 board: the same surface as boards/esp32_devkitc/device/hal.py,
# implemented over the `host` bridge of the WASI MicroPython build. Every call crosses to the
# board process on the host (boards/emulated/host/board.py), which owns the pty UARTs, the
# TCP sockets, the GPIO lines the rig watches, and the (possibly accelerated) clock.

import binascii
import json
import sys

import host
from micropython import const

_RESET_EXIT = const(3)
FLASH_ROOT = "/flash"


def _call(name, arg=None):
    reply = json.loads(host.call(name, json.dumps(arg)))
    if not reply["ok"]:
        if reply["error"].startswith("ConsoleInterrupt"):
            raise KeyboardInterrupt  # Ctrl-C on the console (boards/emulated/host/console.py)
        if reply["error"].startswith("WatchdogReset"):
            sys.exit(_RESET_EXIT)  # the emulated watchdog expired: the board resets
        raise OSError(reply["error"])
    return reply["value"]


def _b64(data):
    return binascii.b2a_base64(data)[:-1].decode()


class Output:
    """A GPIO output line (relay driver, LED, RS-485 DE/RE)."""

    def __init__(self, name, initial=0):
        self._name = name
        self._value = initial
        _call("gpio_write", [name, initial])

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        _call("gpio_write", [self._name, self._value])
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class Input:
    """A GPIO input line (button, active low on the real board: value() is 1 when pressed)."""

    def __init__(self, name):
        self._name = name

    def value(self):
        return _call("gpio_read", self._name)


class PulseCounter:
    """Counts S0 pulses in the board process (a hardware counter on the real board)."""

    def __init__(self, name):
        self._name = name

    def count(self):
        return _call("pulse_count", self._name)


class UART:
    """Like machine.UART: read(n) returns bytes or None when nothing arrived within the timeout."""

    def __init__(self, name, baudrate, timeout_ms=0):
        self._name = name
        self._timeout = timeout_ms
        _call("uart_open", [name, baudrate])

    def write(self, buf):
        return _call("uart_write", [self._name, _b64(buf)])

    def any(self):
        return _call("uart_any", self._name)

    def read(self, n=256):
        data = _call("uart_read", [self._name, n, self._timeout])
        return binascii.a2b_base64(data) if data else None

    def readinto(self, buf, n=None):
        data = self.read(len(buf) if n is None else n)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)


class Stream:
    """A TCP connection (loopback only on the emulated board). Non-blocking reads:
    readinto() returns None when no data is waiting, 0 when the peer closed."""

    def __init__(self, handle):
        self._h = handle

    def write(self, buf):
        return _call("tcp_write", [self._h, _b64(buf)])

    def readinto(self, buf, n=None):
        want = len(buf) if n is None else n
        data, eof = _call("tcp_read", [self._h, want])
        if data:
            raw = binascii.a2b_base64(data)
            buf[: len(raw)] = raw
            return len(raw)
        return 0 if eof else None

    def close(self):
        if self._h is not None:
            _call("tcp_close", self._h)
            self._h = None


class Board:
    """The HAL surface every board exposes (see boards/hal_surface.py)."""

    board_id = "emulated"
    flash_root = FLASH_ROOT

    def __init__(self):
        info = _call("board_info")
        self.board_id = info["board_id"]
        self.calibration = info["calibration"]
        self.relay = Output("relay", 0)
        self.led = Output("led", 0)
        self.rs485_de = Output("rs485_de", 0)
        self.button = Input("button")
        self.s0 = PulseCounter("s0")
        self.meter_uart = UART("meter", 4800, 50)
        self.rs485_uart = UART("rs485", 9600, 0)

    # clock
    def ticks_ms(self):
        return _call("ticks_ms")

    def ticks_add(self, t, delta):
        return t + delta

    def ticks_diff(self, a, b):
        return a - b

    def sleep_ms(self, ms):
        # Returns early when an input event (pulse, UART byte, TCP data, button) arrives.
        _call("sleep_ms", ms)

    def rtc_time(self):
        return _call("rtc_time")

    def rtc_set(self, unix_seconds):
        _call("rtc_set", unix_seconds)

    def ntp_time(self):
        # Network time (0 when unavailable); the emulated network gives the rig's clock.
        return _call("ntp_time")

    # entropy, network, system
    def random_bytes(self, n):
        return binascii.a2b_base64(_call("rng", n))

    def network_connect(self, ssid, password):
        pass  # the emulated board is always on the (loopback) network

    def network_up(self):
        return _call("network_up")

    def tcp_connect(self, host_name, port, timeout_ms=5000, tls_ca=None):
        # TLS is done by the emulated network interface, verifying against the CA file on flash
        return Stream(_call("tcp_connect", [host_name, port, timeout_ms, tls_ca]))

    def unique_id(self):
        return binascii.unhexlify(_call("board_info")["unique_id"])

    def report(self, key, value):
        # Publish a figure (peak heap, ...) to the board process; the real board ignores it.
        _call("report", [key, value])

    def reset(self):
        _call("reset")
        sys.exit(_RESET_EXIT)

    def watchdog_start(self, timeout_ms):
        # emulated by the host: no feed within timeout_ms of virtual time (or a loop that burns
        # the matching CPU budget without a host call) resets the board, as machine.WDT would
        _call("wdt_start", timeout_ms)

    def watchdog_feed(self):
        _call("wdt_feed")
