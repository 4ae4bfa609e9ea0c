"""The meter speaks MQTT over TLS when its config names a CA: a real mosquitto TLS listener,
certificates made here, the server verified against the CA and the host name."""

from __future__ import annotations

import datetime
import json
import threading

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker, free_port, mosquitto_available
from hil_tests.rig.flash_reader import pubkey_from_console
from sgcore.reading import meter_id_from_pubkey

pytestmark = pytest.mark.needs("mosquitto", mosquitto_available())
ISSUER = "02" + "11" * 32  # any valid key: this test only looks at the connection


def _cert(subject: str, key, issuer_name=None, issuer_key=None, ca=False, san=None):
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def tls_broker(tmp_path):
    ca_key, srv_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("bench CA", ca_key, ca=True)
    srv = _cert("localhost", srv_key, ca.subject, ca_key, san="localhost")
    d = tmp_path / "tls"
    d.mkdir()
    for name, obj in (("ca.pem", ca), ("server.pem", srv), ("server.key", srv_key)):
        (d / name).write_bytes(_pem(obj))
    tls_port = free_port()
    broker = Broker(tmp_path / "broker", extra_conf=(
        f"listener {tls_port} 127.0.0.1\ncafile {d / 'ca.pem'}\ncertfile {d / 'server.pem'}\n"
        f"keyfile {d / 'server.key'}\nallow_anonymous true\nuser root\n"  # read the keys as root
    ))  # fmt: skip
    broker.start()
    yield broker, tls_port, _pem(ca)
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
    meter = _meter(tmp_path, tls_port, _pem(_cert("someone else", other_key, ca=True)))
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
