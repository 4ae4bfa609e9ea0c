# HAL of the emulated ESP32 board: the same surface as boards/esp32_devkitc/device/hal.py,
# implemented over the `host` bridge of the WASI MicroPython build. Every call crosses to the
# board process on the host (boards/emulated/host/board.py), which owns the pty UARTs, the
# TCP sockets, the GPIO lines the rig watches, and the (possibly accelerated) clock.

import binascii
import json
import sys
import time

import host
from micropython import const

_RESET_EXIT = const(3)
_CACHED_ARGS = const(4)  # encoded arguments an object keeps (_encoded)
_TICKS_SYNC_US = const(200_000)  # real us between two readings of the board's clock (ticks_ms)
_FEED_EVERY_US = const(100_000)  # real us between two watchdog feeds sent to the host
FLASH_ROOT = "/flash"


def _call(name, arg=None):
    return _send(name, "" if arg is None else json.dumps(arg))


def _send(name, payload):
    # payload: the argument as JSON ("": none). Objects that pass the same argument every time
    # keep it encoded: every string the guest makes costs a lookup among its interned strings
    # (~23 k fuel with the firmware loaded), json.dumps' result included.
    reply = json.loads(host.call(name, payload))  # [0, value] or [1, "error"] (bridge.py)
    if reply[0]:
        error = reply[1]
        if error.startswith("ConsoleInterrupt"):
            raise KeyboardInterrupt  # Ctrl-C on the console (boards/emulated/host/console.py)
        if error.startswith("WatchdogReset"):
            sys.exit(_RESET_EXIT)  # the emulated watchdog expired: the board resets
        raise OSError(error)
    return reply[1]


def _encoded(cache, key, arg):
    # the JSON of a call's argument, made once per distinct key (a few keys: the rest unkept)
    payload = cache.get(key)
    if payload is None:
        payload = json.dumps(arg)
        if len(cache) < _CACHED_ARGS:
            cache[key] = payload
    return payload


def _b64(data):
    return binascii.b2a_base64(data)[:-1].decode()


class Output:
    """A GPIO output line (relay driver, LED, RS-485 DE/RE)."""

    def __init__(self, name, initial=0):
        self._name = name
        self._writes = (json.dumps([name, 0]), json.dumps([name, 1]))
        self._value = 1 if initial else 0
        _send("gpio_write", self._writes[self._value])

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        _send("gpio_write", self._writes[self._value])
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class Input:
    """A GPIO input line (button, active low on the real board: value() is 1 when pressed)."""

    def __init__(self, name):
        self._name = name
        self._arg = json.dumps(name)

    def value(self):
        return _send("gpio_read", self._arg)


class PulseCounter:
    """Counts S0 pulses in the board process (a hardware counter on the real board)."""

    def __init__(self, name):
        self._name = name
        self._arg = json.dumps(name)

    def count(self):
        return _send("pulse_count", self._arg)


class UART:
    """Like machine.UART: read(n) returns bytes or None when nothing arrived within the timeout."""

    def __init__(self, name, baudrate, timeout_ms=0):
        self._name = name
        self._timeout = timeout_ms
        self._arg = json.dumps(name)
        self._reads = {}  # n -> the encoded argument of uart_read
        _call("uart_open", [name, baudrate])

    def write(self, buf):
        return _call("uart_write", [self._name, _b64(buf)])

    def any(self):
        return _send("uart_any", self._arg)

    def read(self, n=256):
        data = _send("uart_read", _encoded(self._reads, n, [self._name, n, self._timeout]))
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
        self._reads = {}  # n -> the encoded argument of tcp_read

    def write(self, buf):
        return _call("tcp_write", [self._h, _b64(buf)])

    def readinto(self, buf, n=None):
        want = len(buf) if n is None else n
        data, eof = _send("tcp_read", _encoded(self._reads, want, [self._h, want]))
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
        self._ms_per_us = info["speed"] / 1000  # virtual ms per real us (the rig's --speed)
        self._sync_ms = None  # the board's ticks_ms as last read from the board process ...
        self._sync_us = 0  # ... and this VM's real clock just after that reading
        self._last_ms = 0
        self._fed_us = None  # this VM's real clock at the last watchdog feed sent
        self._feed_every_us = 0
        self.relay = Output("relay", 0)
        self.led = Output("led", 0)
        self.rs485_de = Output("rs485_de", 0)
        self.button = Input("button")
        self.s0 = PulseCounter("s0")
        self.meter_uart = UART("meter", 4800, 50)
        self.rs485_uart = UART("rs485", 9600, 0)
        self._sleeps = {}  # ms -> the encoded argument of sleep_ms

    # clock
    def ticks_ms(self):
        # The board process's (virtual) clock, read a few times a second and counted on from
        # this VM's real microsecond clock in between (a host call per reading was a third of a
        # busy step's calls). The reading is taken before the clock here, so the count never
        # runs ahead of the board's clock: a fresh reading only ever moves it forward.
        now = time.ticks_us()
        if self._sync_ms is None or time.ticks_diff(now, self._sync_us) >= _TICKS_SYNC_US:
            self._sync_ms = t = _call("ticks_ms")
            self._sync_us = time.ticks_us()
        else:
            t = self._sync_ms + int(time.ticks_diff(now, self._sync_us) * self._ms_per_us)
        if t < self._last_ms:
            t = self._last_ms
        self._last_ms = t
        return t

    def ticks_add(self, t, delta):
        return t + delta

    def ticks_diff(self, a, b):
        return a - b

    def sleep_ms(self, ms):
        # Returns early when an input event (pulse, UART byte, TCP data, button) arrives.
        _send("sleep_ms", _encoded(self._sleeps, ms, ms))

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
        # emulated by the host: no feed within timeout_ms of real time (or a loop that burns
        # the matching CPU budget without a host call) resets the board, as machine.WDT would
        _call("wdt_start", timeout_ms)
        self._feed_every_us = min(_FEED_EVERY_US, timeout_ms * 125)  # an eighth of the timeout
        self._fed_us = time.ticks_us()

    def watchdog_feed(self):
        # A feed soon after the last one sent (within an eighth of the timeout, at most
        # _FEED_EVERY_US; the meter's timeout is 30 s) is not sent: it would move the host's
        # deadline by that little, and the main loop feeds every step (~1 ms when busy).
        now = time.ticks_us()
        if self._fed_us is not None and time.ticks_diff(now, self._fed_us) < self._feed_every_us:
            return
        self._fed_us = now
        _call("wdt_feed")
