"""The sim's grid connection meter: an emulated SDM630 that the gateway's real poller reads over a pty."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import ModbusBusConfig, ModbusDeviceConfig
from gateway.metrics import GatewayMetrics
from gateway.modbus.poller import BusPoller
from hil_tests.rig.pod_meter import EmulatedSdm630


def _poll(port: str, unit: int) -> dict[str, float]:
    async def main():
        bus = ModbusBusConfig(
            name="rs485", kind="rtu", port=port, baudrate=19200, timeout_s=0.5, retries=1
        )
        dev = ModbusDeviceConfig(name="pod", bus="rs485", model="sdm630", unit=unit)
        poller = BusPoller(bus, [dev], GatewayMetrics(), lambda *a: None)
        await poller.connect()
        try:
            return await poller.poll(poller.devices[0])
        finally:
            poller.client.close()

    return asyncio.run(main())


def test_pod_meter_integrates_import_and_export_and_serves_them():
    pod = EmulatedSdm630(unit=7).start()
    try:
        pod.advance(3600.0, 3600)  # 3.6 kWh imported
        pod.advance(-1800.0, 1800)  # 0.9 kWh exported
        values = _poll(pod.port, 7)
    finally:
        pod.stop()
    assert values["import_kwh"] == pytest.approx(3.6)
    assert values["export_kwh"] == pytest.approx(0.9)
    assert values["power"] == pytest.approx(-1800.0)
    assert values["power_l1"] == pytest.approx(-600.0)
    assert values["frequency"] == pytest.approx(50.0)
