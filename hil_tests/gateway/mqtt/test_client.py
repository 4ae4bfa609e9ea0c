"""The gateway's asyncio MQTT client (gateway/mqtt/client.py) against a real mosquitto."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from gateway.mqtt.client import ClientOptions, MqttClient
from hil_tests.gateway.raw_publisher import RawPublisher
from hil_tests.rig.broker import Broker
from hil_tests.rig.mqtt_peek import retained

TIMEOUT = 60.0  # generous: the machine may be loaded


async def _until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), TIMEOUT * 3))


def _client(broker: Broker, client_id: str, got: list, **kw) -> MqttClient:
    options = ClientOptions(
        broker.host,
        broker.port,
        client_id,
        subscriptions=[("t/+/reading", 1)],
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
        **kw,
    )
    return MqttClient(
        options, asyncio.get_running_loop(), lambda t, p, at: got.append((t, p)), None, None
    )


def test_a_burst_arrives_in_order_and_every_message_is_acknowledged(broker):
    async def body() -> None:
        got: list[tuple[str, bytes]] = []
        client = _client(broker, "gw-burst", got)
        client.start()
        await _until(lambda: client.connected, "the connection")
        await asyncio.sleep(0)  # the SUBSCRIBE is written; wait for its effect below
        pub = RawPublisher(broker.host, broker.port, "burst-meter")
        probe = 0
        while not got:  # the subscription is in place once a probe arrives
            probe += 1
            pub.send("t/m/reading", [b"probe%d" % probe])
            pub.drain()
            await asyncio.sleep(0.05)
        sent = [b"r%04d" % i for i in range(2000)]
        pub.send("t/m/reading", sent)

        def burst() -> list[bytes]:
            return [p for _, p in got if not p.startswith(b"probe")]

        await _until(lambda: len(burst()) >= len(sent), "the burst")
        assert burst() == sent
        pub.drain()
        await client.close()
        # the same persistent session again: the broker redelivers nothing, it had every PUBACK
        again: list[tuple[str, bytes]] = []
        client = _client(broker, "gw-burst", again)
        client.start()
        await _until(lambda: client.connected, "the reconnection")
        pub.send("t/m/reading", [b"marker"])
        await _until(lambda: bool(again), "the marker")
        assert [p for _, p in again if not p.startswith(b"probe")] == [b"marker"]
        pub.close()
        await client.close()

    _run(body)


def test_publishes_made_while_the_broker_is_down_are_delivered_when_it_is_back(tmp_path):
    broker = Broker(tmp_path / "mosquitto").start()
    try:

        async def body() -> None:
            client = _client(broker, "gw-offline", [])
            client.start()
            await _until(lambda: client.connected, "the connection")
            broker.stop()
            await _until(lambda: not client.connected, "the disconnection")
            client.publish("t/state/a", b"made offline", qos=1, retain=True)
            from_thread = threading.Thread(
                target=client.publish, args=("t/state/b", b"from a thread", 1, True)
            )
            from_thread.start()
            from_thread.join()
            broker.start()
            await _until(lambda: client.connected and not client.unacked, "redelivery")
            await client.close()

        _run(body)
        assert retained(broker, "t/state/a", 30) == b"made offline"
        assert retained(broker, "t/state/b", 30) == b"from a thread"
    finally:
        broker.stop()


def test_a_refused_login_is_retried_and_logged(tmp_path, caplog):
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    broker = Broker(tmp_path / "mosquitto")
    broker.conf = (
        f"listener {broker.port} {broker.host}\nallow_anonymous false\npassword_file {passwd}\nuser root\n"
        f"log_dest file {broker.log_path}\n"
    )
    broker.start()
    try:

        async def body() -> None:
            client = _client(broker, "gw-refused", [], username="gw", password="wrong")
            client.start()
            await _until(lambda: "refused" in caplog.text, "the refusal in the log")
            assert not client.connected
            await client.close()

        _run(body)
    finally:
        broker.stop()


def test_the_frame_log_keeps_messages_as_they_came_and_formats_them_when_dumped():
    from gateway.framelog import FrameLog

    frames = FrameLog("mqtt", size=2)
    frames.add(False, b"\x01\x02")
    frames.add_message(True, "t/m/reading", b"x" * 300)
    assert [(r, f) for _, r, f in frames.frames()] == [
        (False, b"\x01\x02"),
        (True, b"t/m/reading " + b"x" * 200),
    ]
    frames.add_message(True, "t/m/status", b"online")
    assert [f for _, _, f in frames.frames()][-1] == b"t/m/status online"
    assert len(frames.frames()) == 2
