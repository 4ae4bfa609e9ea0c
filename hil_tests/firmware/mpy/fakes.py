# Fake hardware for driver tests inside MicroPython: a UART with scripted answers, a clock
# that only moves when the driver sleeps or asks, and a pulse counter.


class FakeUart:
    """Each write() queues the next scripted answer; readinto() hands out `chunk` bytes at most."""

    def __init__(self, answers, chunk=23, stale=b""):
        self.answers = list(answers)
        self.rx = bytes(stale)
        self.written = []
        self.chunk = chunk

    def write(self, buf):
        self.written.append(bytes(buf))
        if self.answers:
            self.rx += self.answers.pop(0)
        return len(buf)

    def any(self):
        return len(self.rx)

    def readinto(self, buf):
        if not self.rx:
            return None
        n = min(len(buf), len(self.rx), self.chunk)
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n


class FakeClock:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        self.t += 1
        return self.t

    def ticks_diff(self, a, b):
        return a - b

    def sleep_ms(self, ms):
        self.t += ms


class FakeCounter:
    def __init__(self):
        self.n = 0

    def count(self):
        return self.n
