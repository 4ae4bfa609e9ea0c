"""Look at what a broker holds for a topic, as any MQTT client would (for tests' own eyes)."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt


def retained(broker: Any, topic: str, timeout: float = 30.0) -> bytes | None:
    """The topic's retained message (or one published while we listen); None if none comes
    within `timeout` seconds. Empty payloads (a cleared retained message) do not count."""
    got: dict[str, bytes] = {}
    done = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        if msg.payload:
            got[msg.topic] = msg.payload
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = on_message
    c.connect(broker.host, broker.port)
    c.subscribe(topic)
    c.loop_start()
    done.wait(timeout)
    c.disconnect()
    c.loop_stop()
    return got.get(topic)
