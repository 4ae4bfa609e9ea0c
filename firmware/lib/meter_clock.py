# The meter's wall clock: the board's RTC, set from network time or by the gateway's signed time
# commands (sgcore/messages.py), and whether readings may be stamped yet (not before the clock was
# ever set). "time" only sets an unset clock or moves it forward; "clock" may also move it back
# (a clock wrongly set into the future) and must carry the nonce of the meter's current `online`
# status; each accepted one is answered with a fresh nonce (a `refresh` status, which the gateway
# does not answer), so none can be replayed. Both carry the gateway's time when it sent them; the
# uplink adds the time the meter took to verify them (uplink.py), so a command that waited for
# its signature check does not set the clock back by that wait.
from micropython import const

from sgcore import messages

_NTP_RETRY_MS = const(60000)


class MeterClock:
    def __init__(self, board, log=print):
        self._b = board
        self._log = log
        self._ntp_at = None
        self._warned = False
        self.nonce = board.random_bytes(messages.NONCE_LEN)  # for the next "clock" command
        self.on_nonce = None  # (status, refresh status) when the nonce changes

    def now(self):
        """Unix seconds, or 0 while the clock is unset (network time is retried every minute)."""
        b = self._b
        t = b.rtc_time()
        if t:
            return t
        now_ms = b.ticks_ms()
        if self._ntp_at is None or b.ticks_diff(now_ms, self._ntp_at) >= _NTP_RETRY_MS:
            self._ntp_at = now_ms
            t = b.ntp_time()
            if t:
                b.rtc_set(t)
                self._log("clock set from network time: %d" % t)
                return t
        if not self._warned:
            self._log(
                "clock error: time not set; waiting for the gateway or NTP, not signing readings"
            )
            self._warned = True
        return 0

    def set(self, unix_seconds):
        """The gateway's time command (its signature was checked by the uplink)."""
        self._b.rtc_set(unix_seconds)
        self._warned = False
        self._log("clock set by the gateway: %d" % unix_seconds)

    def command(self, unix_seconds, open_start):
        """A signed time command: set the clock unless it is within 2 s already. A time before the
        open interval would reopen closed intervals: refused."""
        if unix_seconds < open_start:
            self._log("clock: ignoring a time before the open interval (%d)" % unix_seconds)
        elif abs(unix_seconds - self._b.rtc_time()) > 2:
            self.set(unix_seconds)

    def status(self):
        return messages.online_status(self.nonce)

    def clock_command(self, unix_seconds, nonce):
        """A signed, nonce'd "clock" command: sets the clock either way (also back)."""
        if nonce != self.nonce:
            self._log("clock: ignoring a clock command with a stale nonce")
            return
        self.nonce = self._b.random_bytes(messages.NONCE_LEN)  # used once
        if self.on_nonce is not None:
            self.on_nonce(self.status(), messages.online_status(self.nonce, True))
        if abs(unix_seconds - self._b.rtc_time()) > 2:
            self.set(unix_seconds)
