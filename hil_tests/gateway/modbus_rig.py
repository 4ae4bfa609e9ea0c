"""Modbus test rig: a pty pair of serial ports joined by a relay thread, and an emulated meter.

link = PtyLink(); link.start()   # link.port_a <-> link.port_b, like a null-modem cable
server on link.port_a (pymodbus ModbusSerialServer), gateway poller on link.port_b.
"""

from __future__ import annotations

import os
import select
import threading
import tty

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext

from gateway.modbus.decode import encode_register
from gateway.modbus.regmap import RegisterMap


class PtyLink:
    def __init__(self) -> None:
        self._ma, sa = os.openpty()
        self._mb, sb = os.openpty()
        for fd in (sa, sb):
            tty.setraw(fd)
        self.port_a, self.port_b = os.ttyname(sa), os.ttyname(sb)
        self._slaves = (sa, sb)  # kept open so the masters never see EOF/EIO
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self.bytes_relayed = 0

    def start(self) -> PtyLink:
        self._thread.start()
        return self

    def _relay(self) -> None:
        peers = {self._ma: self._mb, self._mb: self._ma}
        while True:
            ready, _, _ = select.select([self._ma, self._mb, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    os.write(peers[fd], data)
                    self.bytes_relayed += len(data)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self._ma, self._mb, *self._slaves, self._stop_r, self._stop_w):
            os.close(fd)


def meter_context(
    regmap: RegisterMap, values: dict[str, float], unit: int = 1
) -> ModbusServerContext:
    """A pymodbus server context holding `values` at the addresses of `regmap`."""
    size = max(r.address + r.width for r in regmap.registers) + 2
    ir, hr = [0] * size, [0] * size
    for reg in regmap.registers:
        words = encode_register(reg, values.get(reg.name, 0.0))
        target = ir if reg.function == "input" else hr
        target[reg.address : reg.address + reg.width] = words
    # pymodbus device contexts address data blocks from 1 (protocol address 0 -> index 1)
    device = ModbusDeviceContext(
        ir=ModbusSequentialDataBlock(1, ir), hr=ModbusSequentialDataBlock(1, hr)
    )
    return ModbusServerContext(devices={unit: device}, single=False)
