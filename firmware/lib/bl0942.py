# BL0942 single-phase energy IC over UART (4800 8N1): full-packet read (docs/journal.md, "BL0942").
#
# Request 0x58|addr 0xAA; the chip answers 23 bytes, all fields little-endian:
#   0 header 0x55 | 1 I_RMS u24 | 4 V_RMS u24 | 7 I_FAST_RMS u24 | 10 WATT s24 | 13 CF_CNT u24
#   16 FREQ u24 (period in us, the top byte is 0) | 19 STATUS u24 | 22 checksum
#   checksum = ~((0x58|addr) + bytes 0..21) & 0xFF   (as ESPHome's bl0942 component checks it)
# CF_CNT counts |energy| (one count = 419430.4 / pref W*s): the counts between two frames are
# booked as import or export by the sign of the mean of their two WATT values. Conversion constants per board, as raw units
# per V / A / W and CF counts per kWh (ESPHome's UREF/IREF/PREF/EREF), from board.json.

import time

try:
    from micropython import const
except ImportError:  # CPython (tests)

    def const(value):
        return value


_HEADER = const(0x55)
_READ = const(0x58)
_FULL_PACKET = const(0xAA)
_FRAME = const(23)
_CF_MASK = const(0xFFFFFF)
_MAX_STEP = const(0x10000)  # more CF counts than this between two reads: the chip restarted

DEFAULTS = {  # ESPHome bl0942 reference constants (shunt 1 mOhm, divider 3.9 MOhm : 1 kOhm)
    "bl0942_uref": 15883.34116,
    "bl0942_iref": 251065.6814,
    "bl0942_pref": 623.0270705,
    "bl0942_eref": 5347.484240,  # = pref * 3600000 / 419430.4
}


class BL0942:
    def __init__(self, uart, calibration=None, timeout_ms=200, address=0, clock=time):
        cal = dict(DEFAULTS)
        cal.update(calibration or {})
        self._uart = uart
        self._clock = clock  # ticks_ms(), ticks_diff(), sleep_ms()
        self._timeout = timeout_ms
        self._addr = address
        self._cmd = bytes((_READ | address, _FULL_PACKET))
        self._buf = bytearray(_FRAME)
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
        while got < _FRAME:
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
        if buf[0] != _HEADER:
            return False
        s = _READ | self._addr
        for i in range(_FRAME - 1):
            s += buf[i]
        return (~s & 0xFF) == buf[_FRAME - 1]

    def _u24(self, at):
        b = self._buf
        return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)

    def _parse(self):
        watt = self._u24(10)
        if watt & 0x800000:
            watt -= 0x1000000
        self.current_ma = int(self._u24(1) * self._ma)
        self.voltage_dv = int(self._u24(4) * self._dv)
        self.power_w = int(watt * self._w)
        period = self._u24(16)
        self.freq_chz = 100000000 // period if period else 0
        self.status = self._u24(19)
        cf = self._u24(13)
        last = self.cf_cnt
        prev_watt = self._watt
        self.cf_cnt = cf
        self._watt = watt
        if last is None:
            return  # the first frame only sets the baseline
        step = (cf - last) & _CF_MASK  # a 24-bit counter that wraps
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
