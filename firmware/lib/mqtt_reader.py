# Reads MQTT packets from a non-blocking stream into one preallocated buffer, a slice per call.
#
# The stream's readinto(buf, n) returns None (no data yet), 0 (peer closed) or a count. The fixed
# header is read byte by byte (at most 5), then the body into `buf`. A PUBLISH longer than the
# buffer is not kept: its first len(buf) bytes are read (topic and packet id), the rest discarded
# a few reads per call, and `cut` tells the caller how many bytes were lost. Any other oversized
# or malformed header raises MqttProtocolError; a closed stream raises MqttError.

import mqtt_packet as mp

from sgcore.compat import const

_MAX_SKIP_READS = const(4)  # reads of an oversized packet's tail per call


class PacketReader:
    def __init__(self, max_packet):
        self.buf = bytearray(max_packet)
        self._mv = memoryview(self.buf)
        self.first = 0  # fixed-header byte of the packet in buf
        self.n = 0  # body bytes in buf
        self.cut = 0  # bytes of an oversized PUBLISH body that were discarded
        self.last_rx = 0  # ticks of the last byte received
        self.seen = bytearray(8)  # types of the last packets, for error logs
        self._seen_n = 0
        self._one = bytearray(1)
        self._scratch = bytearray(64)  # the discarded tail of an oversized PUBLISH
        self._hdr = bytearray(5)
        self._hn = 0
        self._rl = -1
        self._got = 0
        self._skip = 0

    def reset(self):
        """Forget a partly read packet (the connection was closed)."""
        self._hn = 0
        self._rl = -1
        self._skip = 0

    def mid_packet(self):
        return self._hn > 0

    def _take(self, stream, buf, n, now):
        got = stream.readinto(buf, n)
        if got is None:
            return 0
        if not got:
            raise mp.MqttError("connection closed by the broker")
        self.last_rx = now
        return got

    def read(self, stream, now):
        """True when a whole packet is ready (first, buf[0:n], cut); False: call again later."""
        if self._rl < 0:
            while self._hn < 5:
                if not self._take(stream, self._one, 1, now):
                    return False
                self._hdr[self._hn] = self._one[0]
                self._hn += 1
                if self._hn > 1:
                    r = mp.parse_remaining(self._hdr, 1, self._hn)
                    if r is not None:
                        self._begin(r[0])
                        break
        want = self._rl if self._rl < len(self.buf) else len(self.buf)
        while self._got < want:
            got = self._take(stream, self._mv[self._got : want], want - self._got, now)
            if not got:
                return False
            self._got += got
        reads = 0
        while self._skip:
            if reads == _MAX_SKIP_READS:
                return False
            reads += 1
            got = self._take(stream, self._scratch, min(self._skip, 64), now)
            if not got:
                return False
            self._skip -= got
        self.first = self._hdr[0]
        self.n = want
        self.cut = self._rl - want
        self.seen[self._seen_n & 7] = self.first
        self._seen_n += 1
        self._hn = 0
        self._rl = -1
        return True

    def _begin(self, remaining):
        first = self._hdr[0]
        mp.check_header(first, remaining)
        if remaining > len(self.buf):
            if first & 0xF0 != mp.PUBLISH:
                raise mp.MqttProtocolError(f"packet 0x{first:02x} of {remaining} bytes")
            self._skip = remaining - len(self.buf)
        self._rl = remaining
        self._got = 0
