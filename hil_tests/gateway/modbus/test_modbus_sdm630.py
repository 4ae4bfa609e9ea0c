import asyncio

import pytest
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from gateway.config import ModbusBusConfig, ModbusDeviceConfig
from gateway.errors import ModbusReadError
from gateway.metrics import GatewayMetrics
from gateway.modbus.poller import BusPoller
from gateway.modbus.registers import sdm630
from gateway.modbus.regmap import Block, Register
from hil_tests.gateway.modbus_rig import meter_context
from hil_tests.rig.broker import free_port
from hil_tests.rig.wire import PtyWire

POD = {
    "voltage_l1": 231.5,
    "voltage_l2": 229.0,
    "voltage_l3": 230.25,
    "current_l1": 4.5,
    "power_l1": 1041.75,
    "power": 3120.5,
    "frequency": 50.0,
    "import_kwh": 12345.5,
    "export_kwh": 678.25,
    "total_kwh": 13023.75,
}


@pytest.fixture
def link():
    link = PtyWire("rs485")
    yield link
    link.close()


def _bus(link, **kw):
    base = dict(name="rs485", kind="rtu", port=link.b, baudrate=19200, timeout_s=0.3, retries=1)
    return ModbusBusConfig(**{**base, **kw})


async def _with_server(server, body):
    await server.serve_forever(background=True)
    try:
        return await body()
    finally:
        await server.shutdown()


def test_poller_reads_an_emulated_sdm630_over_rtu_on_a_pty(link):
    metrics = GatewayMetrics()
    seen = []

    async def main():
        server = ModbusSerialServer(
            meter_context(sdm630.REGISTER_MAP, POD, unit=3), port=link.a, baudrate=19200
        )

        async def body():
            dev = ModbusDeviceConfig(name="pod", bus="rs485", model="sdm630", unit=3)
            poller = BusPoller(_bus(link), [dev], metrics, lambda *a: seen.append(a))
            await poller.connect()
            try:
                values = await poller.poll(poller.devices[0])
            finally:
                poller.client.close()
            return values, poller

        return await _with_server(server, body)

    values, poller = asyncio.run(main())
    for name, v in POD.items():
        assert values[name] == pytest.approx(v), name
    assert values["current_l2"] == 0.0
    assert len(poller.devices[0].blocks) < len(sdm630.REGISTER_MAP.registers)  # block reads
    assert seen and seen[0][0] == "pod" and seen[0][3] is True
    assert metrics.modbus_reads.labels("pod")._value.get() == 1
    assert poller.devices[0].errors == {}


def test_silent_device_counts_timeouts_and_dumps_frames(link, caplog):
    metrics = GatewayMetrics()

    async def main():  # nothing answers on the other end of the link: a dead or absent meter
        dev = ModbusDeviceConfig(name="ghost", bus="rs485", model="sdm630", unit=9)
        poller = BusPoller(_bus(link, retries=1), [dev], metrics)
        await poller.connect()
        try:
            with pytest.raises(ModbusReadError):
                await poller.read_block(poller.devices[0], poller.devices[0].blocks[0])
            return poller
        finally:
            poller.client.close()

    poller = asyncio.run(main())
    assert poller.devices[0].errors == {"timeout": 2}
    assert metrics.modbus_errors.labels("ghost", "timeout")._value.get() == 2
    assert "frames before ghost unit 9" in caplog.text
    assert poller.devices[0].values == {}


def test_exception_response_is_counted_and_values_are_kept(link):
    async def main():
        server = ModbusSerialServer(
            meter_context(sdm630.REGISTER_MAP, POD), port=link.a, baudrate=19200
        )

        async def body():
            dev = ModbusDeviceConfig(name="pod", bus="rs485", model="sdm630", unit=1)
            poller = BusPoller(_bus(link, retries=0), [dev])
            await poller.connect()
            try:
                state = poller.devices[0]
                await poller.poll(state)
                before = dict(state.values)
                beyond = Block("input", 0x2000, 2, (Register("x", 0x2000, "float32", ""),))
                with pytest.raises(ModbusReadError, match="exception response"):
                    await poller.read_block(state, beyond)
                return state, before
            finally:
                poller.client.close()

        return await _with_server(server, body)

    state, before = asyncio.run(main())
    assert state.errors == {"response": 1}
    assert state.values == before and before["power"] == pytest.approx(POD["power"])


def test_poller_reads_over_modbus_tcp():
    port = free_port()

    async def main():
        server = ModbusTcpServer(
            meter_context(sdm630.REGISTER_MAP, POD), address=("127.0.0.1", port)
        )

        async def body():
            bus = ModbusBusConfig(
                name="lan", kind="tcp", host="127.0.0.1", tcp_port=port, timeout_s=1
            )
            dev = ModbusDeviceConfig(name="pod", bus="lan", model="sdm630", unit=1)
            poller = BusPoller(bus, [dev])
            for _ in range(50):
                if await poller.connect():
                    break
                await asyncio.sleep(0.05)
            try:
                return await poller.poll(poller.devices[0])
            finally:
                poller.client.close()

        return await _with_server(server, body)

    values = asyncio.run(main())
    assert values["import_kwh"] == pytest.approx(POD["import_kwh"])
