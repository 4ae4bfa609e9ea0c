"""HIL: what a real gateway process does with hostile or unlucky meter-side input (real mosquitto).

Forged `online` floods, a deeply nested status, readings stamped far in the future, a broker that
lost its retained messages, a meter enrolled while the gateway runs.
"""

from __future__ import annotations

import time

from hil_tests.gateway.gateway_proc import GatewayProcess, sgrid_gateway, write_config
from hil_tests.gateway.ln.node_procs import wait_until
from hil_tests.gateway.modbus.test_gateway_modbus_service import ServerThread
from hil_tests.gateway.mqtt_meter import MqttMeter
from hil_tests.gateway.soft_meter import SoftMeter
from hil_tests.rig.broker import Broker
from hil_tests.rig.mqtt_peek import retained
from hil_tests.rig.wire import PtyWire
from sgcore.messages import NONCE_LEN, online_status

SITE = "inp"


def _enroll(cfg, soft: SoftMeter) -> None:
    sgrid_gateway("enroll-meter", "--config", str(cfg), "--pubkey", soft.pubkey.hex())


def _site_pub(cfg) -> bytes:
    return bytes.fromhex(sgrid_gateway("site-key", "--config", str(cfg)).stdout.strip())


def _started(tmp_path, broker, soft: SoftMeter, extra: str = ""):
    cfg, port = write_config(tmp_path, broker, SITE, extra)
    _enroll(cfg, soft)
    gw = GatewayProcess(cfg, broker, SITE)
    meter = None
    try:
        gw.wait_online()
        meter = MqttMeter(broker.host, broker.port, SITE, _site_pub(cfg), soft)
        meter.wait_subscribed()
    except BaseException:  # the test's `finally` never runs: stop what we started here
        if meter is not None:
            meter.close()
        gw.close()
        raise
    return cfg, port, gw, meter


def test_a_flood_of_forged_online_status_gets_a_few_answers_not_thousands(tmp_path, broker):
    soft = SoftMeter()
    _cfg, port, gw, meter = _started(tmp_path, broker, soft)
    try:
        meter.publish_next(1)
        assert meter.wait_acked(0), gw.log()
        meter.cmds.clear()
        t0 = time.monotonic()
        for _ in range(2000):
            meter.client.publish(meter.topic("status"), b"online", qos=0)
        suppressed = "sgrid_status_answers_suppressed_total"
        wait_until(lambda: gw.metrics(port).get(suppressed, 0) >= 1900, 60, "the flood handled")
        # the answers' commands reach the meter (a fixed 0.5 s could end before the first did)
        wait_until(lambda: any(c[0] == "time" for c in meter.cmds), 60, "a time command")
        elapsed = time.monotonic() - t0
        times = [c for c in meter.cmds if c[0] == "time"]
        # a burst of 3 (a meter that reboots twice in a row is answered), then 1 per 10 s (a
        # loaded machine may take more than 10 s for the flood)
        most = 3 + int(elapsed // 10)
        assert 1 <= len(times) <= most, (
            f"{len(times)} time commands for 2000 forged online messages"
        )
    finally:
        meter.close()
        gw.close()


def test_a_deeply_nested_status_is_a_logged_rejection_not_a_crash(tmp_path, broker):
    soft = SoftMeter()
    _cfg, port, gw, meter = _started(tmp_path, broker, soft)
    try:
        nested = b'{"state":' * 100_000 + b"1" + b"}" * 100_000  # RecursionError in json
        meter.client.publish(meter.topic("status"), nested, qos=1).wait_for_publish(5)
        meter.client.publish(meter.topic("status"), b"[" * 200_000, qos=1).wait_for_publish(5)
        meter.client.publish(meter.topic("status"), b"[" * 300, qos=1).wait_for_publish(5)
        meter.publish_next(1)  # the gateway still does its job
        assert meter.wait_acked(0), gw.log()
        time.sleep(0.5)
        assert "RecursionError" not in gw.log() and "Traceback" not in gw.log(), gw.log()[-2000:]
        m = gw.metrics(port)
        assert m.get('sgrid_status_rejected_total{reason="malformed"}', 0) >= 1
        assert m.get('sgrid_status_rejected_total{reason="oversized"}', 0) >= 1
    finally:
        meter.close()
        gw.close()


def test_a_reading_stamped_far_ahead_of_the_gateway_clock_is_refused(tmp_path, broker):
    soft = SoftMeter(start=int(time.time()) - 1800)
    _cfg, port, gw, meter = _started(tmp_path, broker, soft)
    try:
        meter.publish_next(1)
        assert meter.wait_acked(0), gw.log()
        soft.t = 3_980_000_000  # 2096: a clock wrongly set into the future
        meter.publish_next(1)
        future = 'sgrid_readings_rejected_total{reason="future"}'
        wait_until(lambda: gw.metrics(port).get(future, 0) >= 1, 60, "the reading refused")
        assert not meter.wait_acked(1, timeout=1.0), "a reading from 2096 was acked"
        m = gw.metrics(port)
        assert m.get(f'sgrid_readings_accepted_total{{meter="{soft.hex}"}}') == 1
    finally:
        meter.close()
        gw.close()


def test_a_clock_command_that_never_arrived_is_sent_again_at_the_next_future_reading(
    tmp_path, broker
):
    """The sim's clock-drift bug: the clock command sent for a reading from the future was lost
    in the meter (its uplink kept one waiting command, and the next one replaced it); the
    gateway had used the nonce up and would not ask again, as the meter brings a new nonce only
    once it applied a command. The meter's clock stayed an hour ahead for good."""
    soft = SoftMeter(start=int(time.time()) - 1800)
    _cfg, port, gw, meter = _started(tmp_path, broker, soft)
    try:
        meter.publish_next(1)
        assert meter.wait_acked(0), gw.log()
        meter.status(online_status(b"\x5a" * NONCE_LEN))  # answered with a clock command
        assert meter.wait_cmd("clock") is not None, gw.log()
        soft.t = int(time.time()) + 3600  # its clock jumped an hour ahead; the command was lost
        meter.publish_next(1)
        deadline = time.monotonic() + 60
        while sum(c[0] == "clock" for c in meter.cmds) < 2:
            assert time.monotonic() < deadline, (meter.cmds, gw.log()[-2000:])
            time.sleep(0.05)
        assert meter.bad_messages == 0  # signed over the nonce the meter still has
        m = gw.metrics(port)
        assert m.get('sgrid_readings_rejected_total{reason="future"}', 0) >= 1, m
    finally:
        meter.close()
        gw.close()


def test_a_meter_enrolled_while_the_gateway_runs_gets_discovery_at_its_first_status(
    tmp_path, broker
):
    cfg, _port = write_config(tmp_path, broker, SITE)
    gw = GatewayProcess(cfg, broker, SITE)
    soft = SoftMeter()
    meter = None
    try:
        gw.wait_online()
        _enroll(cfg, soft)  # while it runs
        meter = MqttMeter(broker.host, broker.port, SITE, _site_pub(cfg), soft)
        meter.wait_subscribed()
        meter.status(b"online")
        topic = f"homeassistant/sensor/sgrid_{soft.hex}/import_energy/config"
        assert retained(broker, topic) is not None, gw.log()
    finally:
        if meter is not None:
            meter.close()
        gw.close()


def test_discovery_comes_back_after_the_broker_lost_its_retained_messages(tmp_path):
    broker = Broker(tmp_path / "mosquitto").start()
    link = PtyWire("rs485")
    extra = (
        f'[[modbus.bus]]\nname = "rs485"\nkind = "rtu"\nport = "{link.b}"\nbaudrate = 19200\n'
        "timeout_s = 0.5\n"
        '[[modbus.device]]\nname = "pod"\nbus = "rs485"\nmodel = "sdm630"\nunit = 1\npoll_s = 0.5\n'
    )
    cfg, _port = write_config(tmp_path, broker, SITE, extra)
    soft = SoftMeter()
    _enroll(cfg, soft)
    pod_topic = f"homeassistant/sensor/sgrid_{SITE}_pod/import_kwh/config"
    meter_topic = f"homeassistant/sensor/sgrid_{soft.hex}/import_energy/config"
    try:
        with ServerThread(link.a):
            gw = GatewayProcess(cfg, broker, SITE)
            try:
                gw.wait_online()
                assert retained(broker, pod_topic, 60) is not None, gw.log()
                broker.stop()  # no persistence: every retained message is gone
                broker.start()
                assert retained(broker, pod_topic, 60) is not None, gw.log()
                assert retained(broker, meter_topic, 60) is not None, gw.log()
            finally:
                gw.close()
    finally:
        link.close()
        broker.stop()
