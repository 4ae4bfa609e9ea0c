"""A software meter on MQTT: publishes its SoftMeter records, verifies the gateway's signed acks and
commands, and resends from its journal when asked, as the firmware will."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from gateway.mqtt import messages
from gateway.mqtt.bridge import _no_delay
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import topics


class MqttMeter:
    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        site_pubkey: bytes,
        meter: SoftMeter | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ):
        """`password`: log in with the meter's broker account (user = meter id); `ca_file`: TLS."""
        self.meter = meter or SoftMeter()
        self.site = site
        self.site_pubkey = site_pubkey
        self.acked = -1  # highest seq acknowledged
        self.ack_hashes: dict[int, bytes] = {}
        self.cmds: list[tuple[str, int]] = []
        self.bad_messages = 0
        self.ack_times: dict[int, float] = {}
        self._cond = threading.Condition()
        self._subscribed = False  # the broker acknowledged this connection's SUBSCRIBE
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"meter-{self.meter.hex[:12]}"
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.will_set(self.topic("status"), b"offline", qos=1, retain=True)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_socket_open = _no_delay
        if password is not None:
            self.client.username_pw_set(self.meter.hex, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file)
        self.client.connect(host, port)
        self.client.loop_start()

    def topic(self, leaf: str) -> str:
        return topics.meter_topic(self.site, self.meter.hex, leaf)

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        with self._cond:
            self._subscribed = False
        client.subscribe([(self.topic("ack"), 1), (self.topic("cmd"), 1)])
        with self._cond:
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, props) -> None:
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def wait_subscribed(self, timeout: float = 30.0) -> None:
        """Until the broker has acknowledged the SUBSCRIBE (SUBACK): acks and commands sent from
        then on reach this meter (a fixed 0.1 s after CONNACK was not always enough)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._subscribed, timeout):
                raise AssertionError(f"meter {self.meter.hex[:12]}: no SUBACK in {timeout} s")

    def _on_message(self, client, userdata, msg) -> None:
        now = time.perf_counter()
        try:
            if msg.topic.endswith("/ack"):
                upto, h = messages.decode_ack(msg.payload, self.site_pubkey, self.meter.meter_id)
                with self._cond:
                    self.ack_hashes[upto] = h
                    if upto > self.acked:
                        for s in range(self.acked + 1, upto + 1):
                            self.ack_times.setdefault(s, now)
                        self.acked = upto
                    self._cond.notify_all()
            else:
                op, arg = messages.decode_cmd(msg.payload, self.site_pubkey, self.meter.meter_id)
                with self._cond:
                    self.cmds.append((op, arg))
                    self._cond.notify_all()
                if op == "resend":
                    self.resend_from(arg)
        except messages.MessageError:
            self.bad_messages += 1

    def publish(self, record: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(self.topic("reading"), record, qos=1)

    def publish_next(self, n: int = 1) -> None:
        for _ in range(n):
            self.publish(self.meter.next_record())

    def resend_from(self, seq: int) -> None:
        for record in self.meter.journal[seq:]:
            self.publish(record)

    def status(self, payload: bytes) -> None:
        self.client.publish(self.topic("status"), payload, qos=1, retain=True)

    def wait_acked(self, seq: int, timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.acked >= seq, timeout)

    def wait_cmd(self, op: str, timeout: float = 10.0) -> tuple[str, int] | None:
        with self._cond:
            self._cond.wait_for(lambda: any(c[0] == op for c in self.cmds), timeout)
            return next((c for c in self.cmds if c[0] == op), None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
