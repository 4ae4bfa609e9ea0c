# The meter's measuring front end: energy from the configured source into the registers.
#
# meter_source "s0": pulses of a DIN-rail meter's S0 output (import only; power estimated from
# the pulse rate). "bl0942": the BL0942 energy IC on the metering UART (bidirectional, with
# voltage and power). Either way the registers get exact mWh deltas and a power sample.
from bl0942 import BL0942
from s0 import S0

from sgcore.compat import const

_READ_EVERY_MS = const(1000)  # how often the chip is read / the S0 rate is re-estimated


class Metering:
    def __init__(self, board, cfg):
        self._board = board
        self.source = cfg["meter_source"]
        self.power_w = 0
        self.voltage_dv = 0
        self.current_ma = 0
        self._last_ms = board.ticks_ms()
        self._acc_mwh = 0  # S0: energy since the last power estimate
        if self.source == "bl0942":
            self._chip = BL0942(board.meter_uart, board.calibration, clock=board)
            self._s0 = None
        else:
            imp = cfg["s0_imp_per_kwh"] or board.calibration.get("s0_imp_per_kwh", 1000)
            self._s0 = S0(board.s0, imp)
            self._chip = None

    def errors(self):
        chip = self._chip
        return (chip.bad_frames + chip.timeouts) if chip else 0

    def poll(self, regs, force=False):
        """Take the energy measured since the last poll; `force` reads the chip now (an interval
        is about to close, so its energy must be counted up to this moment)."""
        b = self._board
        now = b.ticks_ms()
        dt = b.ticks_diff(now, self._last_ms)
        if self._s0 is not None:
            imp, exp = self._s0.take_energy()
            regs.add_energy(imp, exp)
            self._acc_mwh += imp
            if dt >= _READ_EVERY_MS:
                self.power_w = self._acc_mwh * 3600 // dt  # mWh per ms -> W
                self._acc_mwh = 0
                self._last_ms = now
                regs.sample(self.power_w, 0)
            return
        if dt < _READ_EVERY_MS and not force:
            return
        self._last_ms = now
        chip = self._chip
        if chip.read():
            imp, exp = chip.take_energy()
            regs.add_energy(imp, exp)
            self.power_w = chip.power_w
            self.voltage_dv = chip.voltage_dv
            self.current_ma = chip.current_ma
            regs.sample(chip.power_w, chip.voltage_dv)
