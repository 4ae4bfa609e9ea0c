"""Polling the Modbus devices of one bus (RTU over pyserial, or TCP) with pymodbus.

One `BusPoller` owns one bus and talks to one device at a time. Between transactions it keeps the
bus silent for at least 3.5 character times (the RTU inter-frame gap; 1.75 ms above 19200 baud,
as the spec fixes) plus the configured turnaround, so slow RS-485 devices can turn their driver
around. Every read is a block read planned from the device's register table, with a timeout and
retries; failures are counted per device and kind, and the bus's last frames are dumped.
pymodbus is wrapped here and nowhere else: its exceptions become ModbusReadError.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gateway.config import ModbusBusConfig, ModbusDeviceConfig
from gateway.errors import ModbusReadError, RegisterMapError
from gateway.framelog import FrameLog
from gateway.modbus.decode import decode_block
from gateway.modbus.registers import MODELS
from gateway.modbus.regmap import Block, plan_blocks

log = logging.getLogger(__name__)

OnValues = Callable[[str, str, dict[str, float], bool], None]  # device, model, values, first


def silent_interval_s(baudrate: int) -> float:
    """RTU inter-frame silence: 3.5 characters of 11 bits, fixed at 1.75 ms above 19200 baud."""
    return 0.00175 if baudrate > 19200 else 3.5 * 11 / baudrate


def values_from_response(block: Block, response: Any) -> dict[str, float]:
    """Values of a block from a pymodbus response PDU; ModbusReadError for anything unexpected."""
    if response is None:
        raise ModbusReadError("no response")
    if response.isError():
        code = getattr(response, "exception_code", None)
        raise ModbusReadError(f"exception response (code {code})")
    registers = getattr(response, "registers", None)
    if not isinstance(registers, list):
        raise ModbusReadError("response carries no registers")
    try:
        return decode_block(block, registers)
    except RegisterMapError as exc:
        raise ModbusReadError(str(exc)) from exc


class DeviceState:
    def __init__(self, cfg: ModbusDeviceConfig) -> None:
        self.cfg = cfg
        self.regmap = MODELS[cfg.model]
        self.blocks = plan_blocks(self.regmap)
        self.values: dict[str, float] = {}
        self.errors: dict[str, int] = {}
        self.polls = 0
        self.next_due = 0.0


class BusPoller:
    def __init__(
        self,
        bus: ModbusBusConfig,
        devices: list[ModbusDeviceConfig],
        metrics: Any = None,
        on_values: OnValues | None = None,
        pins: Any = None,
    ) -> None:
        self.bus = bus
        self.devices = [DeviceState(d) for d in devices]
        self.metrics = metrics
        self.on_values = on_values
        self.frames = FrameLog(f"modbus:{bus.name}", size=32)
        self._silence = silent_interval_s(bus.baudrate) if bus.kind == "rtu" else 0.0
        self._silence += bus.turnaround_ms / 1000
        self._last_end = 0.0
        self._de = pins.de_pin(bus.de_pin) if pins is not None and bus.de_pin is not None else None
        self.client = self._make_client()

    def _make_client(self) -> Any:
        common: dict[str, Any] = {
            "timeout": self.bus.timeout_s,
            "retries": 0,  # we retry ourselves, to count and to keep the bus timing
            "reconnect_delay": 1.0,
            "reconnect_delay_max": 30.0,
            "trace_packet": self._trace,
        }
        if self.bus.kind == "tcp":
            return AsyncModbusTcpClient(self.bus.host, port=self.bus.tcp_port, **common)
        return AsyncModbusSerialClient(
            self.bus.port,
            baudrate=self.bus.baudrate,
            parity=self.bus.parity,
            stopbits=self.bus.stopbits,
            bytesize=8,
            **common,
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        self.frames.add(not sending, data)
        if self._de is not None and sending:  # drive DE for the frame's time on the wire
            self._de.on()
            wire_s = len(data) * 11 / self.bus.baudrate + self._silence
            asyncio.get_running_loop().call_later(wire_s, self._de.off)
        return data

    # --- polling -----------------------------------------------------------------------------

    async def connect(self) -> bool:
        ok = await self.client.connect()
        if not ok:
            log.warning("modbus bus %s: cannot connect (pymodbus keeps retrying)", self.bus.name)
        return bool(ok)

    async def run(self) -> None:
        """Poll every device at its interval until cancelled."""
        await self.connect()
        try:
            while True:
                dev = min(self.devices, key=lambda d: d.next_due)
                delay = dev.next_due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                dev.next_due = time.monotonic() + dev.cfg.poll_s
                await self.poll(dev)
        finally:
            self.client.close()

    async def poll(self, dev: DeviceState) -> dict[str, float]:
        """Read every block of a device; returns the values read (blocks that failed are absent)."""
        values: dict[str, float] = {}
        for block in dev.blocks:
            try:
                values.update(await self.read_block(dev, block))
            except ModbusReadError as exc:
                log.warning("modbus %s block @0x%04X failed: %s", dev.cfg.name, block.address, exc)
        if values:
            first = dev.polls == 0
            dev.polls += 1
            dev.values.update(values)
            if self.metrics is not None:
                self.metrics.modbus_reads.labels(dev.cfg.name).inc()
            if self.on_values is not None:
                self.on_values(dev.cfg.name, dev.cfg.model, dict(dev.values), first)
        return values

    async def read_block(self, dev: DeviceState, block: Block) -> dict[str, float]:
        last_error = "no attempt"
        for _attempt in range(self.bus.retries + 1):
            await self._keep_silence()
            try:
                response = await asyncio.wait_for(
                    self._request(dev, block), self.bus.timeout_s + 0.5
                )
                return values_from_response(block, response)
            except (TimeoutError, ModbusException) as exc:
                kind, last_error = "timeout", f"{type(exc).__name__}: {exc}"
            except ModbusReadError as exc:
                kind, last_error = "response", str(exc)
            finally:
                self._last_end = time.monotonic()
            dev.errors[kind] = dev.errors.get(kind, 0) + 1
            if self.metrics is not None:
                self.metrics.modbus_errors.labels(dev.cfg.name, kind).inc()
        self.frames.dump(
            f"{dev.cfg.name} unit {dev.cfg.unit} block @0x{block.address:04X}: {last_error}"
        )
        raise ModbusReadError(last_error)

    async def _request(self, dev: DeviceState, block: Block) -> Any:
        if not self.client.connected:
            await self.client.connect()
        read = (
            self.client.read_input_registers
            if block.function == "input"
            else self.client.read_holding_registers
        )
        return await read(block.address, count=block.count, device_id=dev.cfg.unit)

    async def _keep_silence(self) -> None:
        wait = self._last_end + self._silence - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
