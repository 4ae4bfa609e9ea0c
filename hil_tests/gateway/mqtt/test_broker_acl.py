"""The production broker config (deploy/mosquitto/) on a real mosquitto: TLS only, no anonymous,
per-meter accounts written by `sgrid broker add-meter`, the ACL keeping meters to their own
topics, and the real gateway working over TLS with its account (issue 16 item 8)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.crypto import SiteKey
from gateway.mqtt import accounts
from hil_tests import REPO_ROOT
from hil_tests.gateway.gateway_proc import GatewayProcess, sgrid_gateway
from hil_tests.gateway.mqtt_meter import MqttMeter
from hil_tests.gateway.soft_meter import SoftMeter
from hil_tests.rig.broker import Broker, free_port
from hil_tests.rig.certs import write_ca_and_server
from sgcore import topics

DEPLOY = REPO_ROOT / "deploy" / "mosquitto"
SITE = "acl-site"


def sgrid(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def production_conf(broker_dir: Path, port: int, log: Path) -> str:
    """deploy/mosquitto/seamless-grid.conf with the test's directory, port and log."""
    text = (DEPLOY / "seamless-grid.conf").read_text()
    assert "listener 8883\n" in text and "allow_anonymous false" in text
    text = text.replace("/etc/mosquitto/sgrid/", f"{broker_dir}/")
    text = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    # mosquitto started as root drops to user "mosquitto", who cannot read pytest's tmp dirs
    return text + f"user root\npersistence false\nlog_dest file {log}\nlog_type all\n"


@pytest.fixture
def site(tmp_path):
    broker_dir = tmp_path / "sgrid"
    write_ca_and_server(broker_dir)
    port, metrics_port = free_port(), free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        f'[gateway]\nsite = "{SITE}"\nstate_dir = "state"\n'
        f'[mqtt]\nhost = "localhost"\nport = {port}\nclient_id = "gw-{SITE}"\n'
        f'username = "{accounts.GATEWAY_USER}"\npassword_file = "gw.secret"\n'
        'tls_ca_file = "sgrid/ca.pem"\n'
        f'[metrics]\nenabled = true\nlisten = "127.0.0.1"\nport = {metrics_port}\n'
    )
    sgrid("broker", "add-gateway", "--config", str(cfg), "--dir", str(broker_dir))
    meters = [SoftMeter(), SoftMeter()]
    passwords = []
    for m in meters:
        out = sgrid("broker", "add-meter", "--config", str(cfg), "--dir", str(broker_dir),
                    "--meter", m.pubkey.hex())  # fmt: skip
        passwords.append(out.split()[-1])
    broker = Broker(tmp_path / "broker", port=port)
    broker.conf = production_conf(broker_dir, port, tmp_path / "broker" / "mosquitto.log")
    broker.start()
    try:
        yield cfg, broker_dir, broker, meters, passwords, metrics_port
    finally:
        broker.stop()


def _client(user: str | None, password: str | None, ca: Path | None, port: int):
    """Connect; returns (client, CONNACK reason code or None if the connection failed)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}")
    got: list = []
    done = threading.Event()

    def on_connect(client, userdata, flags, rc, props):
        got.append(rc)
        done.set()

    c.on_connect = on_connect
    c.received = []  # type: ignore[attr-defined]
    c.on_message = lambda cl, u, msg: cl.received.append((msg.topic, msg.payload))
    if user is not None:
        c.username_pw_set(user, password)
    if ca is not None:
        c.tls_set(ca_certs=str(ca))
    try:
        c.connect("localhost", port)
    except (OSError, ValueError):
        return c, None
    c.loop_start()
    done.wait(5)
    return c, (got[0] if got else None)


def _stop(c) -> None:
    c.disconnect()
    c.loop_stop()


def test_the_example_acl_is_what_the_commands_write():
    example = (DEPLOY / "acl.example").read_text()
    body = "\n".join(ln for ln in example.splitlines() if not ln.startswith("#")).strip()
    made = accounts.upsert_block(
        accounts.gateway_acl("demo-site"),
        accounts.meter_acl("demo-site", "00112233445566778899aabbccddeeff"),
    )
    assert body == made.strip()
    again = accounts.upsert_block(made, accounts.meter_acl("demo-site", "00" * 16))
    assert accounts.upsert_block(again, accounts.meter_acl("demo-site", "00" * 16)) == again


def test_nobody_gets_in_without_an_account_and_tls(site):
    cfg, broker_dir, broker, meters, passwords, _ = site
    ca = broker_dir / "ca.pem"
    c, rc = _client(None, None, ca, broker.port)  # anonymous
    assert rc is None or rc.is_failure
    _stop(c)
    c, rc = _client(meters[0].hex, "wrong", ca, broker.port)
    assert rc is None or rc.is_failure
    _stop(c)
    c, rc = _client(meters[0].hex, passwords[0], None, broker.port)  # plain TCP to TLS port
    assert rc is None or rc.is_failure
    _stop(c)
    c, rc = _client(meters[0].hex, passwords[0], ca, broker.port)
    assert rc is not None and not rc.is_failure
    _stop(c)


def test_a_meter_can_neither_publish_as_another_nor_read_its_tokens(site):
    cfg, broker_dir, broker, meters, passwords, _ = site
    ca = broker_dir / "ca.pem"
    secret = (cfg.parent / "gw.secret").read_text().strip()
    gw, rc = _client(accounts.GATEWAY_USER, secret, ca, broker.port)
    assert rc is not None and not rc.is_failure
    a, rc_a = _client(meters[0].hex, passwords[0], ca, broker.port)
    b, rc_b = _client(meters[1].hex, passwords[1], ca, broker.port)
    assert not rc_a.is_failure and not rc_b.is_failure
    ta, tb = meters[0].hex, meters[1].hex
    gw.subscribe(topics.meter_topic(SITE, "+", "reading"), qos=1)
    a.subscribe(
        [(topics.meter_topic(SITE, tb, "token"), 1), (topics.meter_topic(SITE, ta, "token"), 1)]
    )
    b.subscribe(topics.meter_topic(SITE, tb, "token"), qos=1)
    time.sleep(0.5)
    a.publish(topics.meter_topic(SITE, tb, "reading"), b"forged by a", qos=1)  # as meter b
    a.publish(topics.meter_topic(SITE, ta, "token"), b"self-made token", qos=1)  # a's own token
    a.publish(topics.meter_topic(SITE, ta, "reading"), b"a's own", qos=1)
    gw.publish(topics.meter_topic(SITE, tb, "token"), b"b's token", qos=1)
    gw.publish(topics.meter_topic(SITE, ta, "token"), b"a's token", qos=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (len(gw.received) < 1 or len(b.received) < 1):
        time.sleep(0.05)
    time.sleep(0.5)  # anything forged would have arrived by now
    assert gw.received == [(topics.meter_topic(SITE, ta, "reading"), b"a's own")]
    assert b.received == [(topics.meter_topic(SITE, tb, "token"), b"b's token")]
    assert a.received == [(topics.meter_topic(SITE, ta, "token"), b"a's token")]
    for c in (gw, a, b):
        _stop(c)


def test_the_gateway_works_over_tls_with_its_account(site):
    cfg, broker_dir, broker, meters, passwords, metrics_port = site
    meter = meters[0]
    sgrid_gateway("enroll-meter", "--config", str(cfg), "--pubkey", meter.pubkey.hex())
    site_pub = SiteKey.load_or_create(cfg.parent / "state" / "site.key").pubkey
    gw = GatewayProcess(cfg, broker, SITE)
    try:
        assert gw.wait_notified("READY=1"), gw.log()
        m = MqttMeter("localhost", broker.port, SITE, site_pub, meter, passwords[0],
                      str(broker_dir / "ca.pem"))  # fmt: skip
        m.wait_subscribed()
        record = meter.next_record()
        deadline = time.monotonic() + 30
        while not m.wait_acked(0, timeout=1.0):  # until the gateway has subscribed
            assert time.monotonic() < deadline, gw.log()
            m.publish(record)
        assert m.bad_messages == 0
        assert "mqtts://localhost" in gw.log()
        m.close()
    finally:
        gw.close()
