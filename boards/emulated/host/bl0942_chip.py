"""An emulated BL0942 energy IC on a serial port (one end of a pty "wire" made by the rig).

It answers the full-packet read (0x58|addr, 0xAA) with the 23-byte frame of the datasheet
(docs/journal.md, "BL0942"; the frame itself: sgcore/bl0942_frame.py), computed from a load model: a callable giving the instantaneous active
power (W, + import, - export) and RMS voltage (V). Energy is integrated in wall-clock time
into CF_CNT with the datasheet's scaling (one count = 419430.4 / pref W*s, so eref counts per
kWh) and wraps at 24 bits like the chip's register. Frames with a bad checksum can be injected.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import time
from collections.abc import Callable

import serial

from sgcore.bl0942_frame import (
    CF_MASK,
    DEFAULT_CALIBRATION,
    FRAME_LEN,
    FULL_PACKET,
    HEADER,
    READ,
    STATUS_REVERSE,
    checksum,
    encode_frame,
)

__all__ = [
    "BL0942Chip",
    "CF_MASK",
    "DEFAULT_CALIBRATION",
    "FRAME_LEN",
    "FULL_PACKET",
    "HEADER",
    "READ",
    "STATUS_REVERSE",
    "checksum",
    "encode_frame",
]

JOIN_S = 30.0  # the chip's thread ends at once when told; this bound only guards against a hang
INTEGRATE_MS = 50  # with no request, the chip still integrates its energy this often

LoadModel = Callable[[], tuple[float, float]]  # -> (active power W, RMS voltage V)


class BL0942Chip:
    def __init__(
        self,
        port: str,
        load: LoadModel,
        calibration: dict[str, float] | None = None,
        *,
        address: int = 0,
        line_hz: float = 50.0,
        cf_cnt: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cal = dict(DEFAULT_CALIBRATION)
        cal.update(calibration or {})
        self.cal = cal
        self.load = load
        self.address = address
        self.line_hz = line_hz
        self._clock = clock
        self._counts = float(cf_cnt)  # CF counts with their fraction, before the 24-bit wrap
        self._last_t = clock()
        self._power = 0.0
        self._flow_ws = [0.0, 0.0]  # what flowed through it: import, export (W*s), the rig's truth
        self._lock = threading.Lock()
        self._bad_checksums = 0
        self.requests = 0
        self.frames_sent = 0
        # (clock time, CF counts) of every answer, the chip's truth for tests: what it had
        # integrated when the meter read it (the last 100,000 answers)
        self.answers: collections.deque[tuple[float, float]] = collections.deque(maxlen=100_000)
        self._serial = serial.Serial(port, 4800, timeout=0.05)
        self._stop_r, self._stop_w = os.pipe()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="bl0942-chip", daemon=True)
        self._thread.start()

    # --- control from the rig / tests ---

    def inject_bad_checksum(self, frames: int = 1) -> None:
        """The next `frames` answers carry a wrong checksum."""
        with self._lock:
            self._bad_checksums += frames

    def integrate(self) -> None:
        """Count the energy up to now and sample the load model (call after changing it)."""
        with self._lock:
            self._integrate()

    def flow_wh(self) -> tuple[float, float]:
        """(import, export) Wh that flowed through the chip up to now, at the powers it saw: the
        physics a rig books (the chip samples its load model on its own clock, so the rig's
        steps never meet its switching instants exactly)."""
        with self._lock:
            self._integrate()
            return self._flow_ws[0] / 3600, self._flow_ws[1] / 3600

    @property
    def cf_cnt(self) -> int:
        with self._lock:
            self._integrate()
            return int(self._counts) & CF_MASK

    def stop(self) -> None:
        """End the chip's thread, then close its port (a thread still serving after the close
        would read and write whatever file took the port's descriptor number). Later calls do
        nothing."""
        if self._stopped:
            return
        self._stopped = True
        os.write(self._stop_w, b"\x01")
        self._thread.join(JOIN_S)
        if self._thread.is_alive():  # never seen: a leaked descriptor beats a stolen byte
            return
        self._serial.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def __enter__(self) -> BL0942Chip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the chip ---

    def _integrate(self) -> None:
        now = self._clock()
        dt = max(0.0, now - self._last_t)
        self._last_t = now
        kwh = abs(self._power) * dt / 3_600_000
        self._flow_ws[0 if self._power >= 0 else 1] += abs(self._power) * dt
        self._counts += kwh * self.cal["bl0942_eref"]
        self._power, self._volts = self.load()

    def frame(self) -> bytes:
        """The answer the chip gives now (integrates the load up to now)."""
        with self._lock:
            self._integrate()
            power, volts = self._power, self._volts
            amps = abs(power) / volts if volts > 0 else 0.0
            raw = encode_frame(
                i_rms=round(amps * self.cal["bl0942_iref"]),
                v_rms=round(volts * self.cal["bl0942_uref"]),
                i_fast_rms=round(amps * self.cal["bl0942_iref"]),
                watt=round(power * self.cal["bl0942_pref"]),
                cf_cnt=int(self._counts),
                period_us=round(1_000_000 / self.line_hz),
                status=STATUS_REVERSE if power < 0 else 0,
                address=self.address,
            )
            if self._bad_checksums:
                self._bad_checksums -= 1
                raw = raw[:-1] + bytes([raw[-1] ^ 0x5A])
            else:
                self.answers.append((self._last_t, self._counts))
            return raw

    def _serve(self) -> None:
        # poll on the port's descriptor, not pyserial's read(): that uses select(), which
        # refuses descriptors above 1024 (a 56-node sim's rig holds about 610, larger grids more)
        with self._lock:
            self._power, self._volts = self.load()
        fd = self._serial.fileno()
        lines = select.poll()
        lines.register(fd, select.POLLIN)
        lines.register(self._stop_r, select.POLLIN)
        stop = select.poll()
        stop.register(self._stop_r, select.POLLIN)
        prev = -1
        while True:
            ready = lines.poll(INTEGRATE_MS)
            if any(f == self._stop_r for f, _ in ready):
                return
            data = b""
            if ready:
                try:
                    data = os.read(fd, 16)
                except BlockingIOError:
                    pass
                except OSError:  # EIO: the other end of the wire is not attached yet
                    pass
                if not data and stop.poll(50):  # hung up: do not spin on it
                    return
            with self._lock:
                self._integrate()  # keep integrating even when nobody asks
            for byte in data:
                if prev == READ | self.address and byte == FULL_PACKET:
                    self.requests += 1
                    self._answer(fd, self.frame())
                    self.frames_sent += 1
                    byte = -1
                prev = byte

    def _answer(self, fd: int, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:  # the wire is full: wait until it drains (or we stop)
                out = select.poll()
                out.register(fd, select.POLLOUT)
                out.register(self._stop_r, select.POLLIN)
                if any(f == self._stop_r for f, _ in out.poll(1000)):
                    return
            except OSError:  # EIO: nobody on the other end: the frame is lost, as on a wire
                return
