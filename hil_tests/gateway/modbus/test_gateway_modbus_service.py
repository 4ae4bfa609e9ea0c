import asyncio
import json
import threading

import paho.mqtt.client as mqtt
import pytest
from pymodbus.server import ModbusSerialServer

from gateway.config import GpioConfig
from gateway.modbus.registers import sdm630
from gateway.pins import GatewayPins
from hil_tests.gateway.gateway_proc import GatewayProcess, write_config
from hil_tests.gateway.modbus_rig import meter_context
from hil_tests.rig.wire import PtyWire

POD = {"voltage_l1": 230.0, "power": 2500.0, "import_kwh": 4321.5, "export_kwh": 12.25}


class ServerThread:
    def __init__(self, port: str) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.server: ModbusSerialServer | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    async def _start(self) -> None:  # pymodbus servers must be built inside their loop
        ctx = meter_context(sdm630.REGISTER_MAP, POD)
        self.server = ModbusSerialServer(ctx, port=self.port, baudrate=19200)
        await self.server.serve_forever(background=True)

    def __exit__(self, *exc):
        assert self.server is not None
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()  # else its self-pipe's sockets are found unclosed at a later gc


def _wait_retained(broker, topics_wanted, timeout=60.0):
    got = {}
    done = threading.Event()

    def on_message(client, userdata, msg):
        got[msg.topic] = msg.payload
        if all(t in got for t in topics_wanted):
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = on_message
    c.connect(broker.host, broker.port)
    for t in topics_wanted:
        c.subscribe(t)
    c.loop_start()
    done.wait(timeout)
    c.disconnect()
    c.loop_stop()
    return got


def test_running_gateway_polls_the_pod_meter_and_publishes_it(tmp_path, broker):
    link = PtyWire("rs485")
    extra = (
        "[gpio]\nenabled = true\nmock = true\nstatus_led = 17\n"
        f'[[modbus.bus]]\nname = "rs485"\nkind = "rtu"\nport = "{link.b}"\nbaudrate = 19200\n'
        "timeout_s = 0.5\n"
        '[[modbus.device]]\nname = "pod"\nbus = "rs485"\nmodel = "sdm630"\nunit = 1\npoll_s = 0.5\n'
    )
    cfg, metrics_port = write_config(tmp_path, broker, "mb", extra)
    state_topic = "sg/mb/modbus/pod/state"
    ha_topic = "homeassistant/sensor/sgrid_mb_pod/import_kwh/config"
    try:
        with ServerThread(link.a):
            gw = GatewayProcess(cfg, broker, "mb")
            try:
                gw.wait_online()
                got = _wait_retained(broker, [state_topic, ha_topic])
                assert state_topic in got, gw.log()
                state = json.loads(got[state_topic])
                assert state["import_kwh"] == pytest.approx(POD["import_kwh"])
                assert state["power"] == pytest.approx(POD["power"])
                ha = json.loads(got[ha_topic])
                assert ha["device_class"] == "energy" and ha["state_class"] == "total_increasing"
                m = gw.metrics(metrics_port)
                assert m['sgrid_modbus_value{device="pod",quantity="voltage_l1"}'] == pytest.approx(
                    230.0
                )
                assert gw.terminate() == 0, gw.log()
            finally:
                gw.close()
    finally:
        link.close()


def test_status_led_is_steady_when_connected_and_blinks_otherwise():
    pins = GatewayPins(GpioConfig(enabled=True, mock=True, status_led=17, local_relay=27))
    try:
        pins.set_connected(True)
        assert pins.led.is_lit and pins.led.pin.state == 1
        pins.set_connected(False)
        assert pins.led._blink_thread is not None  # gpiozero's blinker runs
        assert pins.relay.value == 0
    finally:
        pins.close()


def test_disabled_gpio_is_a_no_op():
    pins = GatewayPins(GpioConfig(enabled=False))
    pins.set_connected(True)
    assert pins.led is None and pins.de_pin(18) is None
    pins.close()
