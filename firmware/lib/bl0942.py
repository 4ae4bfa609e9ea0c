# BL0942 single-phase energy IC over UART (4800 8N1): full-packet read (docs/journal.md, "BL0942";
# the frame and the reference calibration: sgcore/bl0942_frame.py). The CF counts between two
# frames are booked as import or export by the sign of the mean of their two WATT values. Conversion constants per board, as raw units
# per V / A / W and CF counts per kWh (ESPHome's UREF/IREF/PREF/EREF), from board.json.

import time

from sgcore import bl0942_frame as fr
from sgcore.compat import const

_MAX_STEP = const(0x10000)  # more CF counts than this between two reads: the chip restarted


class BL0942:
    def __init__(self, uart, calibration=None, timeout_ms=200, address=0, clock=time):
        cal = dict(fr.DEFAULT_CALIBRATION)
        cal.update(calibration or {})
        self._uart = uart
        self._clock = clock  # ticks_ms(), ticks_diff(), sleep_ms()
        self._timeout = timeout_ms
        self._addr = address
        self._cmd = bytes((fr.READ | address, fr.FULL_PACKET))
        self._buf = bytearray(fr.FRAME_LEN)
        self._mv = memoryview(self._buf)
        self._dv = 10 / cal["bl0942_uref"]  # decivolts per raw unit
        self._ma = 1000 / cal["bl0942_iref"]
        self._w = 1 / cal["bl0942_pref"]
        self._uwh = int(1e9 / cal["bl0942_eref"] + 0.5)  # uWh per CF count
        self.voltage_dv = 0
        self.current_ma = 0
        self.power_w = 0  # + import, - export
        self.freq_chz = 0  # line frequency, centihertz
        self.status = 0
        self.cf_cnt = None  # last CF_CNT seen (None until the first good frame)
        self.frames = 0  # good frames
        self.bad_frames = 0  # wrong header or checksum: rejected
        self.timeouts = 0  # no complete answer within timeout_ms
        self.chip_resets = 0
        self._watt = 0  # raw WATT of the last good frame
        self._imp_uwh = 0  # energy read but not yet taken
        self._exp_uwh = 0

    def read(self):
        """One full-packet read; True when a good frame was parsed, False otherwise (counted)."""
        uart = self._uart
        for _ in range(8):  # drop bytes of an earlier, late answer
            if not uart.any():
                break
            uart.readinto(self._buf)
        uart.write(self._cmd)
        clock = self._clock
        t0 = clock.ticks_ms()
        got = 0
        while got < fr.FRAME_LEN:
            n = uart.readinto(self._mv[got:])
            if n:
                got += n
            elif clock.ticks_diff(clock.ticks_ms(), t0) >= self._timeout:
                self.timeouts += 1
                return False
            else:
                clock.sleep_ms(5)
        if not self._frame_ok():
            self.bad_frames += 1
            return False
        self._parse()
        self.frames += 1
        return True

    def _frame_ok(self):
        buf = self._buf
        return buf[0] == fr.HEADER and fr.checksum(buf, self._addr) == buf[fr.FRAME_LEN - 1]

    def _parse(self):
        b = self._buf
        watt = fr.u24(b, fr.WATT)
        if watt & 0x800000:
            watt -= 0x1000000
        self.current_ma = int(fr.u24(b, fr.I_RMS) * self._ma)
        self.voltage_dv = int(fr.u24(b, fr.V_RMS) * self._dv)
        self.power_w = int(watt * self._w)
        period = fr.u24(b, fr.FREQ)
        self.freq_chz = 100000000 // period if period else 0
        self.status = fr.u24(b, fr.STATUS)
        cf = fr.u24(b, fr.CF_CNT)
        last = self.cf_cnt
        prev_watt = self._watt
        self.cf_cnt = cf
        self._watt = watt
        if last is None:
            return  # the first frame only sets the baseline
        step = (cf - last) & fr.CF_MASK  # a 24-bit counter that wraps
        if step > _MAX_STEP:
            self.chip_resets += 1
            step = cf if cf <= _MAX_STEP else 0
        if watt + prev_watt < 0:
            self._exp_uwh += step * self._uwh
        else:
            self._imp_uwh += step * self._uwh

    def take_energy(self):
        """(import mWh, export mWh) measured since the last call; sub-mWh remainders stay."""
        imp = self._imp_uwh // 1000
        exp = self._exp_uwh // 1000
        self._imp_uwh -= imp * 1000
        self._exp_uwh -= exp * 1000
        return imp, exp
