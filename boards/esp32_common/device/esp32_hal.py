# What every ESP32 board of ours shares behind the HAL (boards/hal_surface.py): the clock and RTC,
# entropy, Wi-Fi, TCP/TLS streams, the watchdog and reset. Each ESP32 board's device/hal.py
# subclasses Esp32Board and wires its own pins (board.json: "hal_common": "esp32_common").
import os
import socket
import time

import machine
from micropython import const

FLASH_ROOT = "/"
_UNSET_BEFORE = const(1600000000)  # an RTC reading before 2020 means "never set"
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0  # ports with a 2000 epoch


class Stream:
    """A TCP connection with non-blocking reads: readinto() -> None when no data, 0 on close."""

    def __init__(self, sock):
        self._sock = sock

    def write(self, buf):
        sent = 0
        mv = memoryview(buf)
        deadline = time.ticks_add(time.ticks_ms(), 5000)
        while sent < len(mv):
            try:
                n = self._sock.send(mv[sent:])
            except OSError as exc:
                if exc.args[0] != 11:  # EAGAIN: socket buffer full, retry until the deadline
                    raise
                n = 0
            sent += n or 0
            if sent < len(mv) and time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                raise OSError(110)  # ETIMEDOUT
        return sent

    def readinto(self, buf, n=None):
        try:
            got = self._sock.readinto(buf, len(buf) if n is None else n)
        except OSError as exc:
            if exc.args[0] == 11:
                return None
            raise
        return got

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Esp32Board:
    """The board-independent part of an ESP32 board's HAL; a subclass sets board_id, the pins,
    and self._waker (a select.poll of the UART whose traffic should end a sleep early)."""

    flash_root = FLASH_ROOT
    _wlan = None
    _waker = None

    # clock
    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_add(self, t, delta):
        return time.ticks_add(t, delta)

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def sleep_ms(self, ms):
        self._waker.poll(ms)

    def rtc_time(self):
        t = time.time() + _EPOCH_OFFSET
        return t if t >= _UNSET_BEFORE else 0

    def rtc_set(self, unix_seconds):
        tm = time.gmtime(unix_seconds - _EPOCH_OFFSET)
        machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))

    def ntp_time(self):
        try:
            import ntptime

            return ntptime.time() + _EPOCH_OFFSET
        except (OSError, ImportError, IndexError):
            return 0

    # entropy, network, system
    def random_bytes(self, n):
        return os.urandom(n)

    def network_connect(self, ssid, password):
        import network

        if self._wlan is None:
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
        if not self._wlan.isconnected():
            self._wlan.connect(ssid, password)

    def network_up(self):
        return self._wlan is not None and self._wlan.isconnected()

    def tcp_connect(self, host_name, port, timeout_ms=5000, tls_ca=None):
        """A TCP stream; with tls_ca (a CA file on flash) TLS that verifies the server's
        certificate against that CA and the host name."""
        addr = socket.getaddrinfo(host_name, port, 0, socket.SOCK_STREAM)[0][-1]
        sock = socket.socket()
        sock.settimeout(timeout_ms / 1000)
        try:
            sock.connect(addr)
            if tls_ca:
                import ssl

                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cafile=tls_ca)
                sock = ctx.wrap_socket(sock, server_hostname=host_name)  # handshake, with timeout
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return Stream(sock)

    def unique_id(self):
        return machine.unique_id()

    def report(self, key, value):
        pass  # figures for the bench; nothing to do on hardware

    def reset(self):
        machine.reset()

    def watchdog_start(self, timeout_ms):
        # machine.WDT cannot be stopped once started: a stuck loop resets the chip
        self._wdt = machine.WDT(timeout=timeout_ms)

    def watchdog_feed(self):
        wdt = getattr(self, "_wdt", None)
        if wdt is not None:
            wdt.feed()
