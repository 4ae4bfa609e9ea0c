"""The grid connection meter (POD) of the simulated microgrid: an emulated Eastron SDM630 served
over Modbus RTU on a pty by pymodbus, exactly as the POD gateway's poller reads a real one.

The sim tells it the power through the grid connection (+ import from the main grid, - export)
every step; it integrates its import and export registers (kWh, float32 as the real meter) and
exposes voltages, currents, frequency and power split over three phases.
"""

from __future__ import annotations

import asyncio
import threading

from pymodbus.server import ModbusSerialServer

from gateway.modbus.decode import encode_register
from gateway.modbus.registers import sdm630
from hil_tests.gateway.modbus_rig import meter_context
from hil_tests.rig.wire import PtyWire

VOLTAGE = 230.0


class EmulatedSdm630:
    """`start()` serves unit `unit` on `wire.a`; the gateway's bus port is `wire.b`."""

    def __init__(self, unit: int = 1, baudrate: int = 19200) -> None:
        self.unit = unit
        self.baudrate = baudrate
        self.wire = PtyWire("pod-rs485")
        self.import_wh = 0.0
        self.export_wh = 0.0
        self.power_w = 0.0
        self._context = meter_context(sdm630.REGISTER_MAP, self._values(), unit=unit)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> str:
        """The pty the gateway's Modbus poller opens."""
        return self.wire.b

    def start(self) -> EmulatedSdm630:
        ready = threading.Event()

        async def serve() -> None:
            self._server = ModbusSerialServer(
                self._context, port=self.wire.a, baudrate=self.baudrate
            )
            await self._server.serve_forever(background=True)
            ready.set()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            if self._server is not None:
                self._loop.run_until_complete(self._server.shutdown())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="pod-sdm630", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the emulated SDM630 did not start")
        return self

    def advance(self, power_w: float, seconds: float) -> None:
        """Meter `power_w` through the grid connection for `seconds` and update the registers."""
        with self._lock:
            wh = power_w * seconds / 3600
            if wh >= 0:
                self.import_wh += wh
            else:
                self.export_wh -= wh
            self.power_w = power_w
            values = self._values()
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._write(values), self._loop).result(timeout=5)

    def _values(self) -> dict[str, float]:
        per_phase = self.power_w / 3
        current = abs(per_phase) / VOLTAGE
        return {
            **{f"voltage_l{i}": VOLTAGE for i in (1, 2, 3)},
            **{f"current_l{i}": current for i in (1, 2, 3)},
            **{f"power_l{i}": per_phase for i in (1, 2, 3)},
            **{f"power_factor_l{i}": 1.0 for i in (1, 2, 3)},
            "power": self.power_w,
            "power_factor": 1.0,
            "frequency": 50.0,
            "import_kwh": self.import_wh / 1000,
            "export_kwh": self.export_wh / 1000,
            "total_kwh": (self.import_wh + self.export_wh) / 1000,
        }

    async def _write(self, values: dict[str, float]) -> None:
        # the running server keeps its own register image (pymodbus SimCore): write into that,
        # at protocol addresses, as a FC16 write from a master would
        assert self._server is not None
        for reg in sdm630.REGISTER_MAP.registers:
            fc = 4 if reg.function == "input" else 3
            words = encode_register(reg, values[reg.name])
            await self._server.context.async_setValues(self.unit, fc, reg.address, words)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.wire.close()
