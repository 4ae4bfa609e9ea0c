# MQTT 3.1.1 client for the meter: MicroPython sockets, no asyncio, a state machine advanced by
# poll() from the main loop with bounded work per call. Design and topics: docs/meter-mqtt.md.
#
#   link = MqttLink(board, "192.168.4.1", 1883, b"meter-1a2b", will_topic=b"sg/s/1a2b/status")
#   c = MQTTClient(link, window=4)
#   c.subscribe(b"sg/s/1a2b/cmd")
#   c.on_message = handler           # handler(topic, payload, retained): bytes, bytes, 0/1
#   main loop: c.poll(); if c.can_publish(): c.publish(topic, payload)
#
# This is the session on top of the connection (mqtt_link.MqttLink): QoS 1 messages hold a slot
# of a bounded window until their PUBACK and are resent, in order and with DUP, after a
# reconnect; subscriptions are renewed after every CONNACK; incoming QoS 0/1 messages go to
# on_message (QoS 1 acknowledged after it returns); a retained "online" goes to the will topic
# after every connect. A missing SUBACK or PUBACK within the link's timeout closes the connection.

import mqtt_packet as mp
from mqtt_link import UP, MqttLink
from mqtt_window import InflightWindow

__all__ = ("MQTTClient", "MqttLink")


class MQTTClient:
    def __init__(self, link, window=4):
        self.link = link
        self.on_message = None
        self.retransmits = 0  # QoS 1 messages resent with DUP
        self.acked = 0  # QoS 1 messages acknowledged by the broker
        self._win = InflightWindow(window)  # slot `window` carries the "online" status
        self._subs = []
        self._sub_pid = 0
        self._sub_deadline = 0
        self._small = bytearray(4)  # the PUBACKs we send
        self.online = b"online"  # the retained status published after every CONNACK

    # --- API -----------------------------------------------------------------------------------

    def poll(self):
        self.link.poll(self)

    def connected(self):
        return self.link.state == UP

    def inflight(self):
        return self._win.used()

    def can_publish(self):
        return self.link.state == UP and self._win.free_slot() >= 0

    def subscribe(self, topic, qos=1):
        """Subscribe now if connected, and again after every reconnect."""
        self._subs.append((topic, qos))
        if self.link.state == UP:
            self._guard(self._send_subscribe)

    def fetch(self, topic):
        """Subscribe to `topic` for this connection only, at QoS 0: the broker sends its
        retained message (a firmware chunk). Not renewed after a reconnect; False if offline."""
        if self.link.state != UP:
            return False
        return self._guard(self._send_fetch, topic)

    def unsubscribe(self, topic):
        """Drop a fetch() subscription (best effort: a lost UNSUBSCRIBE ends with the session)."""
        if self.link.state != UP:
            return False
        return self._guard(self._send_unsubscribe, topic)

    def publish(self, topic, payload, qos=1, retain=False):
        """Send now. QoS 1 holds a window slot until the broker's PUBACK (it is resent after a
        reconnect). False, and nothing sent, when not connected or the window is full."""
        if len(topic) + len(payload) + 9 > len(self.link.tx):
            raise mp.MqttError(f"message of {len(payload)} bytes over the packet limit")
        if self.link.state != UP:
            return False
        if qos == 0:
            return self._guard(self._send_qos0, topic, payload, retain)
        i = self._win.free_slot()
        if i < 0:
            return False
        self._fill(i, topic, payload, retain)
        return True

    def disconnect(self):
        self.link.stop()

    # --- called by the link --------------------------------------------------------------------

    def on_up(self, session_present, now):
        if self._subs:
            self._send_subscribe(now)
        for i in self._win.order():  # the unacknowledged window, oldest first, DUP set
            self.retransmits += 1
            self._send_slot(i, 1, now)
        if self.link.will_topic is not None:
            self._fill(self._win.size, self.link.will_topic, self.online, True)

    def set_online(self, payload, now=None):
        """A new `online` status (e.g. a fresh nonce): published after every CONNACK, and now
        (or `now` instead, when given) if connected."""
        self.online = payload
        if self.link.state == UP and self.link.will_topic is not None:
            self._fill(self._win.size, self.link.will_topic, now or payload, True)

    def on_down(self):
        self._sub_pid = 0
        self._win.clear(self._win.size)  # "online" is published afresh after the next CONNACK

    def check(self, now):
        to = self.link.timeout_ms
        diff = self.link.board.ticks_diff
        if self._sub_pid and diff(now, self._sub_deadline) > 0:
            raise mp.MqttError(f"no SUBACK within {to} ms")
        late = self._win.overdue(now, diff, to)
        if late:
            raise mp.MqttError(f"no PUBACK for packet {late} within {to} ms")

    def on_packet(self, rd, now):
        kind = rd.first & 0xF0
        body, n = rd.buf, rd.n
        if kind == mp.PUBLISH:
            self._on_publish(rd, now)
        elif kind == mp.PUBACK:
            if self._win.release(mp.decode_pid(body, n)):
                self.acked += 1
        elif kind == mp.SUBACK:
            if mp.decode_pid(body, n) == self._sub_pid:
                self._sub_pid = 0
            for i in range(2, n):
                if body[i] == 0x80:
                    raise mp.MqttError("the broker refused a subscription")
                if body[i] > 2:
                    raise mp.MqttProtocolError(f"SUBACK return code 0x{body[i]:02x}")
        # UNSUBACK: nothing waits for it; check_header() let nothing else through

    # --- internals -----------------------------------------------------------------------------

    def _on_publish(self, rd, now):
        topic_end, pid, at = mp.decode_publish(rd.first, rd.buf, rd.n)
        qos = (rd.first >> 1) & 3
        if qos > 1:
            raise mp.MqttProtocolError(f"QoS {qos} PUBLISH on a QoS 1 subscription")
        mv = memoryview(rd.buf)
        if rd.cut:
            self.link.log(
                f"mqtt: dropped a PUBLISH of {rd.n + rd.cut} bytes on {bytes(mv[2:topic_end])}"
                f" (limit {len(rd.buf)})"
            )
        elif self.on_message is not None:
            try:
                self.on_message(bytes(mv[2:topic_end]), bytes(mv[at : rd.n]), rd.first & 1)
            except Exception as e:  # the handler's bug must not take the link down
                self.link.log(f"mqtt: message handler failed: {e!r}")
        if qos:
            mp.ack_into(self._small, mp.PUBACK, pid)
            self.link.write(self._small, now)

    def _fill(self, i, topic, payload, retain):
        self._win.take(i, self._win.new_pid(self._sub_pid), topic, payload, retain)
        self._guard(self._send_slot, i, 0)

    def _send_slot(self, i, dup, now):
        w = self._win
        s, e = mp.publish_into(
            self.link.tx, w.topic[i], w.payload[i], 1, w.retain[i], dup, w.pid[i]
        )
        w.sent[i] = now
        self.link.send(s, e, now)

    def _send_qos0(self, topic, payload, retain, now):
        s, e = mp.publish_into(self.link.tx, topic, payload, 0, retain, 0, 0)
        self.link.send(s, e, now)

    def _send_subscribe(self, now, subs=None):
        self._sub_pid = self._win.new_pid(0)
        self._sub_deadline = self.link.board.ticks_add(now, self.link.timeout_ms)
        s, e = mp.subscribe_into(self.link.tx, self._sub_pid, subs or self._subs)
        self.link.send(s, e, now)

    def _send_fetch(self, topic, now):
        self._send_subscribe(now, [(topic, 0)])

    def _send_unsubscribe(self, topic, now):
        s, e = mp.unsubscribe_into(self.link.tx, self._win.new_pid(0), topic)
        self.link.send(s, e, now)

    def _guard(self, send, *args):
        # A send outside poll(): a failed write closes the connection (a QoS 1 message stays in
        # its slot and goes out again after the reconnect). True if it was written.
        now = self.link.board.ticks_ms()
        try:
            send(*args, now)
            return True
        except (OSError, mp.MqttError) as e:
            self.link.drop(f"write failed: {e}", now, self)
            return False
