"""The meter's connection to the broker: MQTT over TLS when its config names a CA (a real
mosquitto TLS listener, certificates made here, the server verified against the CA and the host
name), and the broker timeout its config sets."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker, free_port, mosquitto_available
from hil_tests.rig.certs import make_cert, pem, write_ca_and_server
from hil_tests.rig.flash_reader import pubkey_from_console
from sgcore.reading import meter_id_from_pubkey

pytestmark = pytest.mark.needs("mosquitto", mosquitto_available())
ISSUER = "02" + "11" * 32  # any valid key: this test only looks at the connection


@pytest.fixture
def tls_broker(tmp_path):
    d = tmp_path / "tls"
    files = write_ca_and_server(d)
    tls_port = free_port()
    broker = Broker(tmp_path / "broker", extra_conf=(
        f"listener {tls_port} 127.0.0.1\ncafile {d / 'ca.pem'}\ncertfile {d / 'server.pem'}\n"
        f"keyfile {d / 'server.key'}\nallow_anonymous true\nuser root\n"  # read the keys as root
    ))  # fmt: skip
    broker.start()
    yield broker, tls_port, files["ca.pem"].read_bytes()
    broker.stop()


def _online(broker: Broker, topic: str, timeout: float) -> bool:
    seen = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, u, msg: b'"online"' in msg.payload and seen.set()  # JSON status
    c.connect(broker.host, broker.port)  # the plain listener, for the test's own eyes
    c.subscribe(topic, qos=1)
    c.loop_start()
    try:
        return seen.wait(timeout)
    finally:
        c.loop_stop()
        c.disconnect()


def _meter(tmp_path, tls_port, ca_pem: bytes) -> BoardProcess:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "ca.pem").write_bytes(ca_pem)
    cfg = {"site": "tls", "broker_host": "localhost", "broker_port": tls_port, "issuer_pubkey": ISSUER,
           "broker_tls_ca": "ca.pem"}  # fmt: skip
    (flash / "config.json").write_text(json.dumps(cfg))
    return BoardProcess(flash_dir=flash, board_id="tls-meter")


def test_meter_connects_over_tls_verifying_the_broker(tmp_path, tls_broker):
    broker, tls_port, ca_pem = tls_broker
    meter = _meter(tmp_path, tls_port, ca_pem)
    try:
        meter.start()
        meter.expect("meter ready")
        mid = meter_id_from_pubkey(pubkey_from_console(meter.console)).hex()
        assert _online(broker, f"sg/tls/{mid}/status", 15), "\n".join(meter.console[-10:])
    finally:
        meter.stop()


def test_meter_refuses_a_broker_its_ca_did_not_sign(tmp_path, tls_broker):
    broker, tls_port, _ = tls_broker
    other_key = ec.generate_private_key(ec.SECP256R1())
    meter = _meter(tmp_path, tls_port, pem(make_cert("someone else", other_key, ca=True)))
    try:
        meter.start()
        meter.expect("meter ready")
        meter.expect(
            r"mqtt: connect to localhost:\d+ failed: .*(CERTIFICATE|certificate|SSL)", timeout=15
        )
        mid = meter_id_from_pubkey(pubkey_from_console(meter.console)).hex()
        assert not _online(broker, f"sg/tls/{mid}/status", 2)
    finally:
        meter.stop()


def test_the_broker_timeout_is_the_configured_one(tmp_path):
    """`mqtt_timeout_s` reaches the link: a server that accepts and never answers CONNACK is
    given up after exactly that long (in the meter's clock), then retried."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    flash = tmp_path / "flash"
    flash.mkdir()
    cfg = {"broker_host": "127.0.0.1", "broker_port": srv.getsockname()[1], "mqtt_timeout_s": 3,
           "issuer_pubkey": ISSUER}  # fmt: skip
    (flash / "config.json").write_text(json.dumps(cfg))
    meter = BoardProcess(flash_dir=flash, board_id="slow-broker")
    try:
        meter.start()
        meter.expect(r"mqtt: no CONNACK within 3000 ms", timeout=30)
    finally:
        meter.stop()
        srv.close()
