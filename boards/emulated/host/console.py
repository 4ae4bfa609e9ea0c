"""The emulated board's console: a pty speaking MicroPython's REPL protocol, as a real board's
USB serial does, so that `mpremote`, `sgrid flash` and `sgrid provision --port` work against it.

The serial side of the protocol (line editing, raw REPL, raw-paste flow control, soft reset
requests) is parsed here, in the board process; the code is compiled and run inside the board's
MicroPython VM, the same VM the firmware runs in, with the flash mounted (boot.py's REPL loop asks
`repl_next` for work). Protocol as in micropython/shared/runtime/pyexec.c and mpremote's
transport_serial.py:

- Ctrl-C while the firmware runs: a KeyboardInterrupt in the VM at its next HAL call; the board
  then sits in the friendly REPL (`>>> `) until reset.
- Ctrl-A: raw REPL (`raw REPL; CTRL-B to exit\\r\\n>`): code then Ctrl-D -> `OK`, the output,
  `\\x04`, the traceback, `\\x04`, `>`. Ctrl-D on an empty raw line: soft reset (boot.py runs, the
  firmware does not, the board comes back in the raw REPL). Ctrl-B: back to the friendly REPL.
- Raw-paste (`\\x05A\\x01` in the raw REPL): `R\\x01`, a 2-byte little-endian window size and
  `\\x01`; the host may send one window ahead and gets `\\x01` for every window consumed; its
  `\\x04` ends the code, answered by `\\x04`, then the output as in the raw REPL.
- Ctrl-D on an empty friendly line: soft reset, the firmware starts again.

A byte sequence the board cannot use is dropped as a real UART would drop it. When nobody has the
console open, output that does not fit the pty's buffer is discarded (oldest first).
"""

from __future__ import annotations

import errno
import os
import termios
import threading
import tty
from collections.abc import Callable

from boards.emulated.host.fd_reader import FdReader
from boards.emulated.host.waker import WakeLine

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_WINDOW = 256  # bytes the host may send ahead in raw-paste mode (an ESP32 uses 128..512)
MAX_INPUT = 64 * 1024

APP, FRIENDLY, RAW = "app", "friendly", "raw"


class ConsoleRepl:
    def __init__(
        self,
        path: str | None,
        wake: WakeLine,
        mirror: Callable[[bytes], None] | None = None,
        banner: str = "MicroPython on the Seamless Grid emulated board",
    ) -> None:
        self._wake = wake
        self._mirror = mirror
        self.banner = banner
        self._cond = threading.Condition()
        self._buf = bytearray()
        self.mode = APP
        self._interrupt = False
        self.delivered = False  # a Ctrl-C reached the VM since it booted
        self._busy = False  # the VM runs code the console handed over
        self._prompt_due = False
        self._closed = False
        if path is None:
            self._fd, slave = os.openpty()
            tty.setraw(slave)
            self.path = os.ttyname(slave)
            self._slave: int | None = slave
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self._fd)
            self.path = path
            self._slave = None
        os.set_blocking(self._fd, False)
        self._reader = FdReader(self._fd, self.feed, name="console")

    # --- bytes in and out --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        with self._cond:
            if (self.mode == APP or self._busy) and not (self._interrupt or self.delivered):
                at = data.find(CTRL_C)
                if at < 0:
                    if self.mode == APP:
                        return  # the firmware does not read its console
                else:
                    self._interrupt = True
                    data = data[at + 1 :]
            room = MAX_INPUT - len(self._buf)
            self._buf += data[:room]
            self._cond.notify_all()
        self._wake.set()

    def vm_output(self, data: bytes) -> None:
        """The VM's stdout: "cooked" as a port's UART output is (\n -> \r\n)."""
        if self._mirror is not None:
            self._mirror(data)
        self._to_pty(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def write(self, data: bytes) -> None:
        """The console's own output (prompts, protocol bytes)."""
        if self._mirror is not None:
            self._mirror(data)
        self._to_pty(data)

    def _to_pty(self, data: bytes) -> None:
        with self._reader.lock:  # once closed, the number may belong to another file
            if not self._reader.stopped:
                self._write_pty(data)

    def _write_pty(self, data: bytes) -> None:
        view = memoryview(data)
        for _attempt in range(2):
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
                return
            except BlockingIOError:
                if self._slave is None:
                    return
                # nobody is reading: drop what is waiting, as a full USB FIFO would
                termios.tcflush(self._slave, termios.TCIFLUSH)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return
                raise

    def take_interrupt(self) -> bool:
        with self._cond:
            hit, self._interrupt = self._interrupt, False
            self.delivered |= hit
            return hit

    # --- the VM's side -----------------------------------------------------------------------

    def boot_mode(self) -> str:
        """What boot.py does: run the firmware (app) or go straight to the REPL."""
        return APP if self.mode == APP else "repl"

    def after_reset(self, hard: bool) -> None:
        with self._cond:
            self._interrupt = False
            self.delivered = False
            self._busy = False
            if hard:
                self.mode = APP
                self._buf.clear()
            elif self.mode == FRIENDLY:
                self.mode = APP  # a soft reset from the friendly REPL runs main.py again
            if self.mode == RAW:
                self._prompt_due = True
                self._emit(RAW_BANNER)

    def enter_repl(self) -> None:
        """The firmware stopped (KeyboardInterrupt): the friendly REPL takes the console."""
        with self._cond:
            self._interrupt = False
            self.delivered = False
            self._busy = False
            if self.mode == APP:
                self.mode = FRIENDLY
                self._emit(b"\r\n" + self._friendly_banner())
                self._prompt_due = False

    def next_work(self, timeout: float | None = None) -> dict[str, str]:
        """Block until the console asks the VM for something: code to run or a soft reset."""
        with self._cond:
            self._busy = False
            self.delivered = False
            if self._prompt_due:
                self._emit(b">" if self.mode == RAW else b">>> ")
                self._prompt_due = False
            line = bytearray()
            while not self._closed:
                if not self._buf:
                    self._cond.wait(0.1)
                    continue
                work = self._raw_step(line) if self.mode == RAW else self._friendly_step(line)
                if work is not None:
                    self._prompt_due = work["op"] == "exec"
                    self._busy = True
                    return work
            return {"op": "close"}

    # --- protocol, one input byte at a time (called with the lock held) ------------------------

    def _getc(self) -> bytes:
        c = bytes(self._buf[:1])
        del self._buf[:1]
        return c

    def _raw_step(self, line: bytearray) -> dict[str, str] | None:
        c = self._getc()
        if c == CTRL_A:
            line.clear()
            self._emit(b"\r\n" + RAW_BANNER + b">")
        elif c == CTRL_B:
            line.clear()
            self.mode = FRIENDLY
            self._emit(b"\r\n" + self._friendly_banner())
        elif c == CTRL_C:
            line.clear()
        elif c == CTRL_D:
            if not line:
                self._emit(b"\r\n")
                return {"op": "soft_reset"}
            self._emit(b"OK")
            code = line.decode("utf-8", "replace")
            line.clear()
            return {"op": "exec", "mode": RAW, "code": code}
        elif c == CTRL_E and not line:
            if not self._wait_bytes(2):
                return None
            if bytes(self._buf[:2]) == b"A\x01":
                del self._buf[:2]
                return self._raw_paste()
            line += c
        else:
            line += c
        return None

    def _raw_paste(self) -> dict[str, str] | None:
        self._emit(b"R\x01" + PASTE_WINDOW.to_bytes(2, "little") + b"\x01")
        code = bytearray()
        left = PASTE_WINDOW
        while not self._closed:
            if not self._buf:
                self._cond.wait(0.1)
                continue
            c = self._getc()
            if c == CTRL_D:
                self._emit(CTRL_D)
                return {"op": "exec", "mode": RAW, "code": code.decode("utf-8", "replace")}
            if c == CTRL_C:
                self._emit(CTRL_D)
                self._emit(
                    b"\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04>"
                )
                return None
            code += c
            left -= 1
            if left == 0:
                self._emit(b"\x01")  # the host may send the next window
                left = PASTE_WINDOW
        return None

    def _wait_bytes(self, n: int) -> bool:
        while len(self._buf) < n and not self._closed:
            if not self._cond.wait(1.0):
                return False
        return len(self._buf) >= n

    def _friendly_step(self, line: bytearray) -> dict[str, str] | None:
        c = self._getc()
        if c == CTRL_A:
            line.clear()
            self.mode = RAW
            self._emit(b"\r\n" + RAW_BANNER + b">")
        elif c == CTRL_B:
            line.clear()
            self._emit(b"\r\n" + self._friendly_banner())
        elif c == CTRL_C:
            line.clear()
            self._emit(b"\r\n>>> ")
        elif c == CTRL_D:
            if not line:
                self._emit(b"\r\n")
                return {"op": "soft_reset"}
        elif c in (b"\x08", b"\x7f"):
            if line:
                del line[-1:]
                self._emit(b"\x08 \x08")
        elif c in (b"\r", b"\n"):
            if c == b"\n" and not line:
                return None  # the LF of a CRLF
            self._emit(b"\r\n")
            text = line.decode("utf-8", "replace")
            line.clear()
            if not text.strip():
                self._emit(b">>> ")
                return None
            return {"op": "exec", "mode": FRIENDLY, "code": text}
        elif c >= b" ":
            line += c
            self._emit(c)  # echo
        return None

    def _friendly_banner(self) -> bytes:
        return (self.banner + '\r\nType "help()" for more information.\r\n>>> ').encode()

    def _emit(self, data: bytes) -> None:
        self.write(data)

    def close(self) -> None:
        self._closed = True
        with self._cond:
            self._cond.notify_all()
        self._reader.stop(self._slave)
