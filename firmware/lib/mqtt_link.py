# The connection under the meter's MQTT client: open a stream, CONNECT/CONNACK, keepalive
# (PINGREQ/PINGRESP), read packets, write bytes, and after any failure close and wait a capped
# exponential backoff with jitter before the next attempt. One bounded slice of work per poll().
#
# The stream comes from `connect(host, port, timeout_ms)` (default board.tcp_connect): write(buf),
# readinto(buf, n) -> None (no data yet) | 0 (closed) | count, close(). TLS belongs there: on an
# ESP32, a factory that wraps the socket with ssl.SSLContext(...).wrap_socket() and makes its
# reads non-blocking. The session is persistent (clean_session = 0); the will, if any, is a
# retained "offline" (QoS 1). The session on top (mqtt.MQTTClient) gets on_up(session_present,
# now), on_packet(reader, now) for every other packet, check(now) once per poll (it raises
# MqttError for its own timeouts) and on_down().

import mqtt_packet as mp
from mqtt_reader import PacketReader

from sgcore.compat import const

IDLE = const(0)  # no connection; next attempt at next_try
WAIT_CONNACK = const(1)
UP = const(2)
_STABLE_MS = const(30000)  # a connection that lived this long resets the backoff
_MAX_PACKETS = const(4)  # packets handled per poll()
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"


class MqttLink:
    def __init__(self, board, host, port, client_id, user=None, password=None, keepalive_s=60,
                 will_topic=None, max_packet=1024, timeout_ms=10000, backoff_min_ms=500,
                 backoff_max_ms=60000, connect=None, log=print):  # fmt: skip
        self.board = board
        self.host = host
        self.port = port
        self._cid = client_id
        self._user = user
        self._password = password
        self._ka_ms = keepalive_s * 1000
        self.will_topic = will_topic
        self.timeout_ms = timeout_ms
        self._bmin = backoff_min_ms
        self._bmax = backoff_max_ms
        self._connect = connect or board.tcp_connect
        self.log = log
        self.state = IDLE
        self.connects = 0  # CONNACKs accepted since boot
        self.drops = 0  # connections closed after an error
        self.tx = bytearray(max_packet)
        self.reader = PacketReader(max_packet)
        self._txmv = memoryview(self.tx)
        self._sock = None
        self._stopped = False
        self._attempts = 0
        now = board.ticks_ms()
        self.next_try = self._up_since = self._last_tx = self._deadline = self._ping_sent = now
        self._ping_out = False

    def send(self, start, end, now):
        """Write tx[start:end]; OSError or MqttError if the connection failed."""
        self.write(self._txmv[start:end], now)

    def write(self, data, now):
        sent = 0
        tries = 0
        while sent < len(data):
            if tries == 8:
                raise mp.MqttError(f"short write ({sent} of {len(data)} bytes)")
            tries += 1
            n = self._sock.write(data[sent:] if sent else data)
            sent += n or 0
        self._last_tx = now

    def stop(self):
        """Clean DISCONNECT (the broker discards the will) and stay offline."""
        self._stopped = True
        if self.state == UP:
            try:
                self._sock.write(_DISCONNECT)
            except OSError:
                pass
        self._close()

    def poll(self, session):
        now = self.board.ticks_ms()
        try:
            if self.state == IDLE:
                if not self._stopped and self.board.ticks_diff(now, self.next_try) >= 0:
                    self._open(now)
                return
            n = 0
            while n < _MAX_PACKETS and self.state != IDLE and self.reader.read(self._sock, now):
                n += 1
                self._dispatch(session, now)
            if self.state != IDLE:
                self._timers(now)
                if self.state == UP:
                    session.check(now)
        except (OSError, mp.MqttError) as e:
            if isinstance(e, mp.MqttProtocolError):
                self.log(f"mqtt: last packets in: {bytes(self.reader.seen).hex()}")
            self.drop(f"{e}", now, session)

    def drop(self, reason, now, session):
        self.drops += 1
        if self.state == UP and self.board.ticks_diff(now, self._up_since) >= _STABLE_MS:
            self._attempts = 0
        self._close()
        session.on_down()
        self._retry_later(reason, now)

    # --- internals -----------------------------------------------------------------------------

    def _open(self, now):
        try:
            self._sock = self._connect(self.host, self.port, self.timeout_ms)
        except OSError as e:
            self._sock = None
            self._retry_later(f"connect to {self.host}:{self.port} failed: {e}", now)
            return
        self.state = WAIT_CONNACK
        self._deadline = self.board.ticks_add(now, self.timeout_ms)
        self.reader.reset()
        self._ping_out = False
        will = b"offline" if self.will_topic is not None else None
        s, e = mp.connect_into(self.tx, self._cid, self._ka_ms // 1000, False, self._user,
                               self._password, self.will_topic, will)  # fmt: skip
        self.send(s, e, now)

    def _dispatch(self, session, now):
        rd = self.reader
        kind = rd.first & 0xF0
        if kind == mp.CONNACK:
            if self.state != WAIT_CONNACK:
                raise mp.MqttProtocolError("CONNACK on an open session")
            present, code = mp.decode_connack(rd.buf, rd.n)
            if code:
                why = mp.REFUSED[code] if code < len(mp.REFUSED) else f"code {code}"
                raise mp.MqttError(f"broker refused the connection: {why}")
            self.state = UP
            self.connects += 1
            self._up_since = now
            self.log(f"mqtt: connected to {self.host}:{self.port} (session present: {present})")
            session.on_up(present, now)
        elif self.state != UP:
            raise mp.MqttProtocolError(f"packet 0x{rd.first:02x} before CONNACK")
        elif kind == mp.PINGRESP:
            self._ping_out = False
        else:
            session.on_packet(rd, now)

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self.state = IDLE

    def _retry_later(self, reason, now):
        delay = self._bmin << min(self._attempts, 16)
        if delay > self._bmax:
            delay = self._bmax
        self._attempts += 1
        r = self.board.random_bytes(2)
        delay = delay // 2 + (delay // 2) * ((r[0] << 8) | r[1]) // 65536  # "equal jitter"
        self.next_try = self.board.ticks_add(now, delay)
        self.log(f"mqtt: {reason}; next attempt in {delay} ms")

    def _timers(self, now):
        diff = self.board.ticks_diff
        to = self.timeout_ms
        if self.state == WAIT_CONNACK:
            if diff(now, self._deadline) > 0:
                raise mp.MqttError(f"no CONNACK within {to} ms")
            return
        if self.reader.mid_packet() and diff(now, self.reader.last_rx) > to:
            raise mp.MqttError(f"packet stalled for {to} ms")
        if self._ping_out:
            if diff(now, self._ping_sent) > to:
                raise mp.MqttError(f"no PINGRESP within {to} ms")
        elif self._ka_ms and (
            diff(now, self._last_tx) >= self._ka_ms // 2
            or diff(now, self.reader.last_rx) >= self._ka_ms // 2
        ):
            self.write(_PINGREQ, now)
            self._ping_out = True
            self._ping_sent = now
