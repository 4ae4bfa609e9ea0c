"""An emulated board as a real OS process, the way the rig sees a board on the bench.

It starts `sgrid board emulate`, collects the firmware console line by line, talks to the
board's control socket (pulses, inputs, state), and can cut the power (SIGKILL) and restore it.
The console also goes to <run_dir>/<board id>.console.log; the process runs in its own process
group, watched by the reaper (hil_tests/rig/procs.py): it never outlives the rig.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from boards.emulated.host.control import ControlClient
from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig import procs

_SOCKET_DIR: str | None = None


def _socket_dir() -> str:
    global _SOCKET_DIR
    if _SOCKET_DIR is None:
        _SOCKET_DIR = tempfile.mkdtemp(prefix="sgb-")
    return _SOCKET_DIR


class BoardTimeout(AssertionError):
    pass


# the button's status line (firmware/lib/meter_panel.py): import Wh, credit Wh, relay
STATUS_RX = r"status: import (\d+) Wh, .*credit (-?\d+) Wh, relay (closed|open)"


@dataclass
class BoardProcess:
    flash_dir: Path
    board_id: str = "emu-1"
    run_dir: Path | None = None
    clock: VirtualClock = field(default_factory=VirtualClock)
    uarts: dict[str, str] = field(default_factory=dict)
    heap_kb: int = 110
    rom_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir or self.flash_dir.parent
        # unix socket paths are limited to 107 bytes: keep them out of deep test directories
        self.control_path = os.path.join(
            _socket_dir(), f"{self.board_id}-{os.getpid()}-{id(self)}.sock"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.console: list[str] = []
        # when the rig read each console line (the board's virtual clock): a line is printed
        # after what it reports happened, so this bounds that moment from above
        self.console_at: list[float] = []
        self._client: ControlClient | None = None
        # one request at a time on the control socket: the sim's driver and its samplers ask the
        # same board from different threads, and two requests in flight would swap replies
        self._control_lock = threading.Lock()

    # --- power ---------------------------------------------------------------------------------

    def start(self, wait_banner: bool = True, timeout: float = 30.0) -> None:
        args = [
            sys.executable,
            "-m",
            "gateway",
            "board",
            "emulate",
            "--flash",
            str(self.flash_dir),
            "--id",
            self.board_id,
            "--control",
            self.control_path,
            "--heap",
            str(self.heap_kb),
            *self.clock.as_args(),
        ]
        for name, path in self.uarts.items():
            args += ["--uart", f"{name}={path}"]
        if self.rom_dir is not None:
            args += ["--rom", str(self.rom_dir)]
        args += self.extra_args
        if os.path.exists(self.control_path):
            os.unlink(self.control_path)
        with open(self.run_dir / f"{self.board_id}.stderr.log", "ab") as log:
            # its own process group, watched by the reaper: it never outlives the rig
            self.proc = procs.spawn(args, stdout=subprocess.PIPE, stderr=log)
        self.lines = queue.Queue()  # expect() sees only what this boot prints
        threading.Thread(target=self._pump, args=(self.proc, self.lines), daemon=True).start()
        self._client = None
        if wait_banner:
            self.expect(r"seamless-grid-meter .* on board", timeout)

    def _pump(self, proc: subprocess.Popen[bytes], lines: queue.Queue[str]) -> None:
        """The console, line by line, also into <run_dir>/<board id>.console.log."""
        assert proc.stdout is not None and self.run_dir is not None
        path = self.run_dir / f"{self.board_id}.console.log"
        with proc.stdout, open(path, "a", encoding="utf-8") as log:  # closed at EOF
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.console_at.append(self.clock.now())
                self.console.append(line)
                lines.put(line)
                log.write(line + "\n")
                log.flush()

    def power_cut(self) -> None:
        """SIGKILL: the firmware gets no chance to flush or close anything."""
        procs.kill(self.proc)
        self._drop_client()

    def stop(self) -> None:
        procs.stop(self.proc)
        self._drop_client()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- console -------------------------------------------------------------------------------

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for a console line matching `pattern` (lines seen before are skipped)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                tail = "\n".join(self.console[-15:])
                raise BoardTimeout(
                    f"{self.board_id}: no line matching {pattern!r} in {timeout}s; last:\n{tail}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if not self.alive():
                    tail = "\n".join(self.console[-15:])
                    raise BoardTimeout(
                        f"{self.board_id} died waiting for {pattern!r}; last:\n{tail}"
                    ) from None
                continue
            m = rx.search(line)
            if m:
                return m

    # --- control socket ------------------------------------------------------------------------

    def control(self, **request: object) -> object:
        with self._control_lock:
            if self._client is None:
                deadline = time.monotonic() + 10
                while not os.path.exists(self.control_path):
                    if time.monotonic() > deadline:
                        raise BoardTimeout(f"{self.board_id}: control socket never appeared")
                    time.sleep(0.02)
                self._client = ControlClient(self.control_path)
            return self._client.request(**request)

    def state(self) -> dict[str, object]:
        return self.control(op="state")  # type: ignore[return-value]

    def pulses(self, n: int) -> int:
        return self.control(op="pulses", n=n)  # type: ignore[return-value]

    def set_input(self, pin: str, value: int) -> None:
        self.control(op="set_input", pin=pin, value=value)

    def status(
        self,
        until: Callable[[re.Match[str]], object] | None = None,
        timeout: float = 60.0,
    ) -> re.Match[str]:
        """The meter's status line (STATUS_RX groups: import, credit, relay) from a button press:
        released, then pressed, until a line satisfies `until`. A press the firmware did not see
        (a loaded host may not poll the button during a short release) or a line printed before
        the meter counted what the test just gave it is pressed again, not a failure."""
        deadline = time.monotonic() + timeout
        last = "none"
        while True:
            self.set_input("button", 0)
            time.sleep(0.3)  # a release the firmware sees on an idle host; missed ones retry
            self.set_input("button", 1)
            left = deadline - time.monotonic()
            try:
                m = self.expect(STATUS_RX, timeout=max(0.5, min(10.0, left)))
            except BoardTimeout:
                m = None
            if m is not None:
                last = m.group(0)
                if until is None or until(m):
                    return m
            if time.monotonic() > deadline:
                raise BoardTimeout(
                    f"{self.board_id}: no status line as wanted in {timeout}s; last: {last}"
                )

    def wait_gpio(self, name: str, value: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.state()["gpio"][name] != value:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise BoardTimeout(f"{self.board_id}: gpio {name} never became {value}")
            time.sleep(0.02)

    def _drop_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except OSError:
                pass
            self._client = None
