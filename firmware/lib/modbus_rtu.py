# Modbus RTU slave on an RS-485 UART (half duplex), advanced by a non-blocking poll().
#
#   slave = ModbusSlave(board.rs485_uart, board.rs485_de, board, provider, unit_id=1,
#                       baudrate=9600, on_write=None)
#   main loop: slave.poll()          # bounded work: one read, at most one frame answered
#
# Framing (Modbus over serial line V1.02, 2.5.1.1): a frame ends at a silence of 3.5 characters
# (11-bit characters: 4.01 ms at 9600 baud, rounded up to whole ms; 1.75 ms fixed above 19200
# baud), measured with clock.ticks_ms() between polls. A request whose length follows from its
# function code (03/04/06/16 and the other standard ones) is taken as soon as that many bytes with
# a correct CRC are in: bytes from a pty (the emulated board) or a late poll may arrive in one
# burst, and a slow main loop must not make the master time out; another slave's reply in such a
# burst is skipped by its own length the same way. A frame with a bad CRC, too short, or longer
# than the 256-byte ADU is dropped and counted; after an overflow the rest of the frame is
# discarded up to the next silence.
#
# Addressing: unit_id answers; 0 is broadcast (writes executed, never answered); others ignored.
# Transmit: DE high, write, wait until the last stop bit left the shift register (uart.flush()
# on ESP32 MicroPython >= 1.20, else txdone() polling, bounded), DE low. DE and /RE are wired
# together, so the receiver is off while we talk and our own echo never comes back.
#
# provider.get(name) -> int | bytes | None supplies the register values (a dict works);
# on_write(name, value, commit) -> 0 to accept, else an exception code (None: every register
# read-only). commit False only asks (an FC16 write asks for every register before applying any).
# Buffers are preallocated; per frame only the memoryview handed to uart.write (and one per
# read that continues a frame) is allocated, plus execute()'s transient frame (bench_modbus).

from modbus_crc import append_crc, crc16
from modbus_pdu import EX_ILLEGAL_ADDRESS, execute, is_write, request_length, response_length

from sgcore.compat import const
from sgcore.modbus_map import MAP_VERSION

_ADU_MAX = const(256)  # the longest RTU frame
_BROADCAST = const(0)
# Values the slave serves itself (see modbus_map): attributes of the same name (a dict: one
# hashed lookup per value instead of six string comparisons).
_OWN = {"unit_id": 1, "map_version": 1, "frames": 1, "crc_errors": 1, "dropped": 1, "exceptions": 1}


def silence_ms(baudrate):
    """The 3.5-character end-of-frame silence in whole ms (11-bit characters)."""
    if baudrate > 19200:
        return 2
    return (38500 + baudrate - 1) // baudrate


class ModbusSlave:
    map_version = MAP_VERSION

    def __init__(self, uart, de, clock, provider, unit_id=1, baudrate=9600, on_write=None):
        self._uart = uart
        self._de = de
        self._clock = clock  # ticks_ms(), ticks_diff(a, b)
        self._provider = provider
        self._on_write = on_write
        self.unit_id = unit_id
        self._new_unit = 0
        self._gap = silence_ms(baudrate)
        self._char_ms = (11000 + baudrate - 1) // baudrate
        self._rx = bytearray(_ADU_MAX)
        self._rxmv = memoryview(self._rx)
        self._tx = bytearray(_ADU_MAX)
        self._txmv = memoryview(self._tx)
        self._n = 0  # bytes of the current frame in _rx
        self._last = 0  # ticks_ms of the last byte received
        self._discard = False  # dropping an oversized frame until the next silence
        self._flush = getattr(uart, "flush", None)
        self._txdone = getattr(uart, "txdone", None)
        # counters (wrap at 16 bits when read over Modbus)
        self.frames = 0  # requests answered or executed
        self.crc_errors = 0
        self.dropped = 0  # oversized, garbage or short frames
        self.exceptions = 0  # exception replies sent
        self.ignored = 0  # frames for other units, broadcast reads
        self.tx_errors = 0  # replies the UART failed to send
        de.value(0)

    # --- the bank modbus_pdu reads and writes --------------------------------------------------

    def get(self, name):
        if name in _OWN:
            return getattr(self, name)
        return self._provider.get(name)

    def write(self, name, value, commit=True):
        if self._on_write is None:
            return EX_ILLEGAL_ADDRESS  # no writable registers in this configuration
        if name == "unit_id" and self._rx[0] == _BROADCAST:
            return EX_ILLEGAL_ADDRESS  # one id for every meter on the bus: never
        code = self._on_write(name, value, commit)
        if commit and not code and name == "unit_id":
            self._new_unit = value  # takes effect after the reply (sent from the old id)
        return code

    # --- the main-loop step --------------------------------------------------------------------

    # Each function of the poll path keeps under ~11 words of state (locals + value stack):
    # MicroPython puts a bigger frame on the heap, an allocation per call (bench_modbus).

    def poll(self):
        """Take what the UART has; handle at most one complete frame. True if one was handled."""
        got = self._receive()
        n = self._n
        if n == 0:
            return False
        if self._discard:
            if not got and self._silent():
                self._discard = False
                self._n = 0
            elif n >= _ADU_MAX:
                self._n = 0  # keep discarding into an empty buffer
            return False
        if self._framed(n):
            return True
        if n >= _ADU_MAX or request_length(self._rx, n) > _ADU_MAX:
            self.dropped += 1
            self._discard = True
            return False
        if got or not self._silent():
            return False
        return self._end_of_frame(n)

    def _receive(self):
        n = self._n
        if n == 0:
            got = self._uart.readinto(self._rxmv, _ADU_MAX)
        elif n < _ADU_MAX:
            got = self._uart.readinto(self._rxmv[n:], _ADU_MAX - n)
        else:
            got = None
        if got:
            self._n = n + got
            self._last = self._clock.ticks_ms()
        return got

    def _silent(self):
        # the 3.5-character silence after the last byte has passed
        clock = self._clock
        return clock.ticks_diff(clock.ticks_ms(), self._last) >= self._gap

    def _framed(self, n):
        # A frame complete by its length and CRC: a request, or another slave's reply read in
        # one burst with what follows (a slow main loop), skipped by its own length so that a
        # request right behind it is not lost.
        rx = self._rx
        need = request_length(rx, n)
        if 0 < need <= n and crc16(rx, need) == 0:
            self._frame(need)
            self._keep_tail(need, n)
            return True
        if rx[0] != self.unit_id and rx[0] != _BROADCAST:
            need = response_length(rx, n)
            if 0 < need <= n and crc16(rx, need) == 0:
                self.ignored += 1
                self._keep_tail(need, n)
                return True
        return False

    def _end_of_frame(self, n):
        # the silence ended the frame
        self._n = 0
        if n < 4:
            self.dropped += 1
            return False
        if crc16(self._rx, n) != 0:
            self.crc_errors += 1
            return False
        self._frame(n)
        return True

    def _keep_tail(self, used, n):
        # bytes that followed the frame in the same burst start the next one
        rx = self._rx
        for i in range(n - used):
            rx[i] = rx[used + i]
        self._n = n - used

    def _frame(self, n):
        rx = self._rx
        unit = rx[0]
        if unit != self.unit_id and unit != _BROADCAST:
            self.ignored += 1
            return
        if unit == _BROADCAST and not is_write(rx[1]):
            self.ignored += 1  # a broadcast read has nothing to do
            return
        m = execute(self, rx, n, self._tx)
        self.frames += 1
        if unit == _BROADCAST:
            return
        if self._tx[1] & 0x80:
            self.exceptions += 1
        self._send(append_crc(self._tx, m))
        if self._new_unit:
            self.unit_id = self._new_unit
            self._new_unit = 0

    def _send(self, n):
        # DE drops whatever happens: a transmitter left on would jam the whole bus.
        # (two except clauses rather than try/finally: 7% less fuel per request)
        self._de.value(1)
        try:
            self._uart.write(self._txmv[:n])
            self._wait_tx(n)
        except OSError:
            self.tx_errors += 1  # the master times out and retries
        except BaseException:
            self._de.value(0)
            raise
        self._de.value(0)

    def _wait_tx(self, n):
        # until the last stop bit has left the UART (bounded)
        if self._flush is not None:
            self._flush()
            return
        if self._txdone is None:
            return  # write() returns when sent (the emulated board's pty)
        clock = self._clock
        t0 = clock.ticks_ms()
        limit = n * self._char_ms + 5
        while not self._txdone() and clock.ticks_diff(clock.ticks_ms(), t0) <= limit:
            pass

    def stats(self):
        return {
            "frames": self.frames,
            "crc_errors": self.crc_errors,
            "dropped": self.dropped,
            "exceptions": self.exceptions,
            "ignored": self.ignored,
            "tx_errors": self.tx_errors,
            "unit_id": self.unit_id,
        }
