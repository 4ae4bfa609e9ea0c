"""The firmware's MQTT client on an emulated board against a real mosquitto, paho on the other side:
round trip, retained status and will, QoS 1 across a broker restart and a connection reset, and
the will when the board process is SIGKILLed."""

from __future__ import annotations

import os
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from hil_tests.firmware.mqtt_rig import BoardScript, ResetProxy, results, run_board_process
from hil_tests.rig.broker import Broker, mosquitto_available

pytestmark = pytest.mark.needs("mosquitto", mosquitto_available())

# Publishes `n` numbered QoS 1 messages on t/data (one every `gap_ms`), echoes what comes in on
# t/cmd to t/echo (QoS 0), and stops once everything is acknowledged and `stop` exists.
PUBLISHER = """
def setup():
    link = mq.MqttLink(board, "127.0.0.1", {port}, b"dev-{tag}", will_topic=b"t/{tag}/status",
                       keepalive_s={keepalive}, timeout_ms=2000, backoff_min_ms=100,
                       backoff_max_ms=1000)
    c = mq.MQTTClient(link, window=4)
    c.on_message = on_message
    c.subscribe(b"t/{tag}/cmd")
    return c

def on_message(topic, payload, retained):
    inbox.append(payload)

def step():
    c.poll()
    now = board.ticks_ms()
    if st[0] < {n} and board.ticks_diff(now, st[1]) >= {gap_ms} and c.can_publish():
        c.publish(b"t/{tag}/data", b"m%04d" % st[0])
        st[0] += 1
        st[1] = now
    while inbox:
        c.publish(b"t/{tag}/echo", inbox.pop(0), 0)
    if st[0] == {n} and c.inflight() == 0 and stop_requested():
        return True
    board.sleep_ms(5)
    return board.ticks_diff(st[2], now) < 0

def finish():
    link = c.link
    result(sent=st[0], acked=c.acked, inflight=c.inflight(), connects=link.connects,
           drops=link.drops, retransmits=c.retransmits)

inbox = []
c = setup()
st = [0, board.ticks_ms(), board.ticks_add(board.ticks_ms(), {limit_ms})]  # sent, last, deadline
while not step():
    gc.collect()
finish()
"""


def publisher(port: int, tag: str, n: int, gap_ms: int = 20, keepalive: int = 30) -> str:
    return PUBLISHER.format(
        port=port, tag=tag, n=n, gap_ms=gap_ms, keepalive=keepalive, limit_ms=90_000
    )


class Peer:
    """paho subscriber collecting t/<tag>/# (persistent session, reconnects quickly)."""

    def __init__(self, broker: Broker, tag: str) -> None:
        self.tag = tag
        self.msgs: dict[str, list[bytes]] = {}
        self.ready = threading.Event()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"peer-{tag}", clean_session=False
        )
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *_: self.ready.set()  # the SUBACK: nothing published
        self.c.on_message = self._on_message  # from now on is missed (not a fixed 0.2 s)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        assert self.ready.wait(60)

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        client.subscribe(f"t/{self.tag}/#", qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        leaf = msg.topic.rsplit("/", 1)[1]
        self.msgs.setdefault(leaf, []).append(bytes(msg.payload))

    def got(self, leaf: str) -> list[bytes]:
        return list(self.msgs.get(leaf, []))

    def wait(self, leaf: str, count: int, timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(set(self.got(leaf))) < count:
            assert time.monotonic() < deadline, f"{leaf}: {len(set(self.got(leaf)))} of {count}"
            time.sleep(0.05)
        return self.got(leaf)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _deduped(msgs: list[bytes]) -> list[bytes]:
    seen: set[bytes] = set()
    return [m for m in msgs if not (m in seen or seen.add(m))]


def _expected(n: int) -> list[bytes]:
    return [b"m%04d" % i for i in range(n)]


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "mosquitto") as b:
        yield b


def test_publish_subscribe_round_trip_with_retained_online(tmp_path, broker):
    peer = Peer(broker, "rt")
    script = BoardScript(tmp_path / "flash", publisher(broker.port, "rt", 12)).start()
    try:
        assert peer.wait("data", 12) == _expected(12)  # in order, no duplicates on a calm link
        peer.c.publish("t/rt/cmd", b"ping-1", qos=1)
        peer.c.publish("t/rt/cmd", b"ping-0", qos=0)
        assert sorted(peer.wait("echo", 2)) == [b"ping-0", b"ping-1"]
        assert peer.got("status")[-1] == b"online"
    finally:
        script.stop()
        out = results(script.join())
        peer.close()
    assert out["acked"] >= 13 and out["inflight"] == 0  # 12 messages + the "online" status
    assert out["connects"] == 1 and out["drops"] == 0


def test_qos1_messages_survive_a_broker_restart_mid_stream(tmp_path):
    # A broker that saves its sessions on shutdown (mosquitto's persistence), restarted while the
    # client streams: what it acknowledged survives in the peer's session, what it did not is
    # resent by the client with DUP. (Without persistence the broker loses acknowledged messages:
    # the end-to-end guarantee then comes from the uplink's ack-and-resend, test_uplink.py.)
    n = 60
    store = tmp_path / "mosquitto-db"
    store.mkdir()
    broker = Broker(
        tmp_path / "mosquitto",
        extra_conf=f"persistence true\npersistence_location {store}/\nuser root\n",  # root: tmp_path
    ).start()
    peer = Peer(broker, "rs")
    script = BoardScript(tmp_path / "flash", publisher(broker.port, "rs", n, gap_ms=40)).start()
    try:
        peer.wait("data", 15)
        broker.stop()
        time.sleep(1.5)
        broker.start()
        peer.wait("data", n, timeout=60)
    finally:
        script.stop()
        out = results(script.join())
        peer.close()
        broker.stop()
    got = _deduped(peer.got("data"))
    assert got == _expected(n)
    assert out["connects"] >= 2 and out["drops"] >= 1 and out["inflight"] == 0


def test_connection_reset_resends_the_window_with_dup(tmp_path, broker):
    n = 80
    proxy = ResetProxy(broker.port)
    peer = Peer(broker, "cr")
    script = BoardScript(tmp_path / "flash", publisher(proxy.port, "cr", n, gap_ms=10)).start()
    try:
        for target in (20, 45):
            peer.wait("data", target)
            assert proxy.reset() >= 1
        peer.wait("data", n, timeout=60)
    finally:
        script.stop()
        out = results(script.join())
        peer.close()
        proxy.close()
    assert _deduped(peer.got("data")) == _expected(n)
    assert out["connects"] >= 3 and proxy.accepted >= 3


def test_will_says_offline_when_the_board_process_is_killed(tmp_path, broker):
    statuses: list[bytes] = []
    online = threading.Event()
    offline = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(client, userdata, msg):
        statuses.append(bytes(msg.payload))
        (online if msg.payload == b"online" else offline).set()

    c.on_message = on_message
    c.connect(broker.host, broker.port)
    c.subscribe("t/kill/status", qos=1)
    c.loop_start()
    proc = run_board_process(
        tmp_path / "flash", publisher(broker.port, "kill", 0), tmp_path / "board.log"
    )
    try:
        assert online.wait(60), (tmp_path / "board.log").read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert offline.wait(10), statuses
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        c.disconnect()
        c.loop_stop()
    assert statuses == [b"online", b"offline"]  # the client never says offline itself: the will
    # retained: a late subscriber learns it too
    late: list[bytes] = []
    got = threading.Event()
    c2 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c2.on_message = lambda cl, u, msg: (late.append(bytes(msg.payload)), got.set())
    c2.connect(broker.host, broker.port)
    c2.subscribe("t/kill/status", qos=1)
    c2.loop_start()
    try:
        assert got.wait(5)
    finally:
        c2.disconnect()
        c2.loop_stop()
    assert late == [b"offline"]
