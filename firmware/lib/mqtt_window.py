# The QoS 1 messages a client has sent and the broker has not acknowledged yet (spec 4.3.2).
#
# A fixed number of slots, allocated once: slots 0..size-1 for the caller's messages, one more
# for the client's own status message. A slot keeps its packet identifier, topic, payload and
# send time until the PUBACK; after a reconnect the client resends the slots in their original
# order (`order()`), with DUP set. No I/O here.

from sgcore.compat import const

_MAX_PID = const(65535)


class InflightWindow:
    def __init__(self, size):
        self.size = size
        self.pid = [0] * (size + 1)  # 0: slot free
        self.topic = [None] * (size + 1)
        self.payload = [None] * (size + 1)
        self.retain = bytearray(size + 1)
        self.sent = [0] * (size + 1)  # ticks of the last send
        self._order = [0] * (size + 1)
        self._count = 0
        self._last_pid = 0

    def used(self):
        return self.size - self.pid[: self.size].count(0)

    def free_slot(self):
        """Index of a free slot for the caller's messages, or -1 when the window is full."""
        i = 0
        while i < self.size:
            if not self.pid[i]:
                return i
            i += 1
        return -1

    def take(self, i, pid, topic, payload, retain):
        self.pid[i] = pid
        self.topic[i] = topic
        self.payload[i] = payload
        self.retain[i] = 1 if retain else 0
        self._count += 1
        self._order[i] = self._count

    def release(self, pid):
        """Free the slot of an acknowledged packet identifier; False if none holds it."""
        if not pid or pid not in self.pid:
            return False
        self.clear(self.pid.index(pid))
        return True

    def clear(self, i):
        self.pid[i] = 0
        self.topic[i] = self.payload[i] = None

    def new_pid(self, also_used):
        """A packet identifier (1..65535) held by no slot and different from `also_used`."""
        pid = self._last_pid
        for _ in range(self.size + 3):  # at most size + 2 identifiers are in use
            pid = pid % _MAX_PID + 1
            if pid != also_used and pid not in self.pid:
                break
        self._last_pid = pid
        return pid

    def order(self):
        """The caller's occupied slots, oldest first (to resend after a reconnect)."""
        out = []
        last = -1
        for _ in range(self.size):
            best = -1
            for i in range(self.size):
                if self.pid[i] and self._order[i] > last:
                    if best < 0 or self._order[i] < self._order[best]:
                        best = i
            if best < 0:
                break
            last = self._order[best]
            out.append(best)
        return out

    def overdue(self, now, diff, timeout_ms):
        """The packet identifier of a message unacknowledged for longer than timeout_ms, or 0."""
        i = 0
        while i <= self.size:
            if self.pid[i] and diff(now, self.sent[i]) > timeout_ms:
                return self.pid[i]
            i += 1
        return 0
