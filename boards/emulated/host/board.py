"""One emulated ESP32 board: the real firmware in real MicroPython, its peripherals on the host.

The firmware image (`firmware/` and the board's device-side HAL `boards/emulated/device/`, compiled
to .mpy by tools.build and mounted read-only at /rom) runs inside the WASI MicroPython VM; the per-board flash
directory is mounted read-write at /flash and survives restarts. Peripherals live here:
GPIO lines the rig can watch and drive, S0 pulse counters, pty UARTs, loopback TCP, a clock that may
run in virtual time. `reset()` from the firmware reboots the VM; a power cut is a SIGKILL of this process.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import select
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boards.emulated.host import board_control
from boards.emulated.host.board_control import INPUTS
from boards.emulated.host.code_image import REPO, code_ram_bytes, load_profile
from boards.emulated.host.console import ConsoleRepl
from boards.emulated.host.control import ControlServer
from boards.emulated.host.pty_uart import PtyUart
from boards.emulated.host.tcp import TcpTable
from boards.emulated.host.vclock import VirtualClock
from boards.emulated.host.waker import Waker
from boards.emulated.host.wasm import DEFAULT_HEAP, MicroPythonVM, Mount, RunOutcome, WasmBoardError
from tools.build import build

log = logging.getLogger("board")

RESET_EXIT = 3
SOFT_RESET_EXIT = 4  # the console asked for a soft reset (Ctrl-D): a fresh VM, peripherals kept


WDT_FUEL_PER_MS = 100_000  # the emulated watchdog's CPU budget: fuel per ms of its timeout


class WatchdogReset(Exception):
    """The emulated watchdog expired: no feed within its timeout (answered to the guest's next
    host call, whose HAL then resets the board)."""


class ConsoleInterrupt(Exception):
    """Ctrl-C on the console: the guest's HAL turns it into a KeyboardInterrupt."""


UART_NAMES = ("meter", "rs485")
OUTPUTS = ("relay", "led", "rs485_de")


@dataclass
class BoardConfig:
    flash_dir: Path
    board_id: str = "emu-1"
    heap_bytes: int = DEFAULT_HEAP
    clock: VirtualClock = field(default_factory=VirtualClock)
    uart_paths: dict[str, str] = field(default_factory=dict)
    control_path: str | None = None
    ntp: bool = True  # the emulated network offers time (like NTP on a real site)
    rom_dir: Path | None = None  # a built image (tools.build); None = build it now
    max_boots: int | None = None  # stop after this many boots (tests); None = forever
    console_path: str | None = None  # attach the console to this tty; None = the board's own pty
    profile: str = "emulated"  # the real board whose pin map and calibration this one plays
    # a sleep of the firmware lasts at least this many real ms (0: exactly its virtual length).
    # At 480x the firmware's 250 ms idle step is half a real ms: the emulated CPU would spin
    # and a 2-core machine runs out of cores at a handful of boards. Inputs, UART and TCP data
    # still wake a sleep at once.
    idle_floor_ms: float = 0.0


class EmulatedBoard:
    def __init__(self, config: BoardConfig) -> None:
        self.config = config
        config.flash_dir.mkdir(parents=True, exist_ok=True)
        self.profile = load_profile(config.profile)
        self.calibration = self.profile["calibration"]
        # The firmware image in ROM: .mpy files built by tools.build, as flashed on a real board.
        self.rom_dir = config.rom_dir or build("emulated")
        self.code_ram = code_ram_bytes(self.rom_dir)
        self.wake = Waker()
        self.gpio: dict[str, int] = dict.fromkeys(OUTPUTS + INPUTS, 0)
        self.pulses: dict[str, int] = {"s0": 0}
        self.reports: dict[str, Any] = {}
        self.boots = 0
        self.soft_resets = 0
        self.image = "rom"  # which image booted last: the factory one in /rom or one on the flash
        self.console = ConsoleRepl(config.console_path, self.wake, mirror=_console)
        self.uarts = {
            name: PtyUart(name, config.uart_paths.get(name), self.wake) for name in UART_NAMES
        }
        self.tcp = TcpTable()
        self._rtc_offset: float | None = None  # rtc = clock.now() + offset once set
        self.lock = threading.Lock()  # the GPIO and pulse lines (the control thread writes them)
        self.vm: MicroPythonVM | None = None
        self._wdt_ms = 0  # the watchdog's timeout once the firmware started it (0: off)
        self._wdt_deadline = 0.0
        self.watchdog_resets = 0
        self.control = (
            ControlServer(config.control_path, self._on_control) if config.control_path else None
        )

    # --- the boot loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Boot the firmware; reboot it on reset(); return the final exit code."""
        for name, uart in self.uarts.items():
            print(f"[board] uart {name}: {uart.path}", file=sys.stderr, flush=True)
        print(f"[board] console: {self.console.path}", file=sys.stderr, flush=True)
        hard = True
        while True:
            if hard:
                self.boots += 1
                self.pulses["s0"] = 0  # the hardware counter restarts with the chip
                self._rtc_offset = None  # no RTC battery on a DevKitC
            code = self._boot_once()
            self.tcp.close_all()
            if code not in (RESET_EXIT, SOFT_RESET_EXIT, 0) and self.console.delivered:
                # Ctrl-C stopped the firmware: the REPL gets the console (in a fresh VM: see
                # board_boot.run_firmware), the peripherals keep their state
                self.console.enter_repl()
                hard = False
                continue
            if code not in (RESET_EXIT, SOFT_RESET_EXIT):
                return code
            hard = code == RESET_EXIT
            if hard and self.config.max_boots is not None and self.boots >= self.config.max_boots:
                return code
            if hard:
                print("[board] reset: rebooting", file=sys.stderr, flush=True)
            else:
                self.soft_resets += 1
                self.console.write(b"MPY: soft reboot\r\n")
            self.console.after_reset(hard)

    def _image_code_ram(self) -> int:
        """Heap for the image that boots: one copied onto the flash (mpremote, `sgrid flash`)
        or the factory image in /rom."""
        flashed = self.config.flash_dir
        self.image = "rom"
        if (flashed / "main.py").is_file() and (flashed / "lib").is_dir():
            self.image = "flash"
            digest = hashlib.sha256(str(flashed.resolve()).encode()).hexdigest()[:16]
            try:
                return code_ram_bytes(flashed, REPO / "build" / "code-ram" / f"{digest}.json")
            except RuntimeError as exc:  # a broken image: the boot shows the error
                log.warning("flashed image: %s", exc)
        return self.code_ram

    def _boot_once(self) -> int:
        cfg = self.config
        self._wdt_ms = 0  # a reset stops the watchdog; the firmware starts it again
        self.vm = MicroPythonVM(
            mounts=[
                # the flash is the filesystem root, as on an ESP32, and also /flash (the HAL's)
                Mount(cfg.flash_dir, "/", writable=True),
                Mount(self.rom_dir, "/rom"),
                Mount(cfg.flash_dir, "/flash", writable=True),
            ],
            host_functions=self._host_functions(),
            heap_bytes=cfg.heap_bytes + self._image_code_ram(),
            stdout=self.console.vm_output,
            stderr=self.console.vm_output,
        )
        try:
            outcome = self.vm.run_file("/rom/boot.py")
        except WasmBoardError as exc:
            if self._wdt_ms and "fuel" in str(exc):
                return self._watchdog_reset("stuck without a host call")
            raise
        return outcome.exit_code

    def _watchdog_reset(self, why: str) -> int:
        self.watchdog_resets += 1
        print(f"[board] watchdog: no feed within {self._wdt_ms} ms ({why}): reset",
              file=sys.stderr, flush=True)  # fmt: skip
        self._wdt_ms = 0
        return RESET_EXIT

    def _wdt_start(self, ms: Any) -> None:
        self._wdt_ms = max(1, int(ms))
        self._wdt_feed(None)

    def _wdt_feed(self, _: Any) -> None:
        if self._wdt_ms:
            # real time, not the rig's virtual time: at 240x a host hiccup is not a stuck loop
            self._wdt_deadline = time.monotonic() + self._wdt_ms / 1000
            if self.vm is not None:
                self.vm.refuel(self._wdt_ms * WDT_FUEL_PER_MS)

    def run_script(self, code: str) -> RunOutcome:
        """Run `code` on this board instead of main.py: same image, HAL, flash and peripherals.

        For firmware tests that exercise one module against real peers (a pty, a broker).
        Like boot.py, it starts with automatic GC off: collect at the script's top level.
        """
        prelude = 'import gc, os, sys\ngc.disable()\nsys.path[:] = ["/rom/lib", "/rom", ""]\nos.chdir("/flash")\n'
        self.vm = MicroPythonVM(
            mounts=[
                Mount(self.rom_dir, "/rom"),
                Mount(self.config.flash_dir, "/flash", writable=True),
            ],
            host_functions=self._host_functions(),
            heap_bytes=self.config.heap_bytes + self.code_ram,
        )
        self._wdt_ms = 0
        try:
            return self.vm.run_code(prelude + code)
        except WasmBoardError as exc:
            if self._wdt_ms and "fuel" in str(exc):  # the watchdog ends a loop stuck in the VM
                code_ = self._watchdog_reset("stuck without a host call")
                return RunOutcome(code_, "", str(exc), self.vm.fuel_used())
            raise

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
        for uart in self.uarts.values():
            uart.close()
        self.tcp.close_all()
        self.console.close()
        self.wake.close()  # last: the readers above could raise it until they stopped

    # --- host functions (called from the firmware through the HAL) -----------------------------

    def _host_functions(self) -> dict[str, Any]:
        functions = self._peripherals()
        functions.update(
            console_boot=lambda _: self.console.boot_mode(),
            repl_next=lambda _: self.console.next_work(),
        )
        return {name: self._interruptible(fn) for name, fn in functions.items()}

    def _interruptible(self, fn: Any) -> Any:
        def call(arg: Any) -> Any:
            if self.console.take_interrupt():
                raise ConsoleInterrupt("Ctrl-C on the console")
            if self._wdt_ms and time.monotonic() > self._wdt_deadline:
                self._watchdog_reset("stuck in a loop of host calls")
                raise WatchdogReset("the watchdog expired")
            return fn(arg)

        return call

    def _peripherals(self) -> dict[str, Any]:
        return {
            "board_info": lambda _: {
                "board_id": self.config.board_id,
                "calibration": self.calibration,
                "unique_id": hashlib.sha256(self.config.board_id.encode()).hexdigest()[:12],
                "speed": self.config.clock.speed,  # the HAL counts ticks_ms on between readings
            },
            "gpio_write": self._gpio_write,
            "gpio_read": lambda name: self.gpio[name],
            "pulse_count": lambda name: self.pulses[name],
            "uart_open": lambda args: self.uarts[args[0]].name,
            "uart_write": lambda args: self.uarts[args[0]].write(base64.b64decode(args[1])),
            "uart_any": lambda name: self.uarts[name].any(),
            "uart_read": self._uart_read,
            "ticks_ms": lambda _: self.config.clock.ticks_ms(),
            "sleep_ms": self._sleep_ms,
            "rtc_time": lambda _: self.rtc_now(),
            "rtc_set": self._rtc_set,
            "ntp_time": lambda _: int(self.config.clock.now()) if self.config.ntp else 0,
            "rng": lambda n: base64.b64encode(os.urandom(int(n))).decode(),
            "network_up": lambda _: True,
            "tcp_connect": self._tcp_connect,
            "tcp_write": lambda a: self.tcp.write(a[0], base64.b64decode(a[1])),
            "tcp_read": self._tcp_read,
            "tcp_close": lambda h: self.tcp.close(h),
            "report": self._report,
            "fuel": lambda _: self.vm.fuel_used() if self.vm else 0,
            "reset": lambda _: None,
            "wdt_start": self._wdt_start,
            "wdt_feed": self._wdt_feed,
        }

    def _gpio_write(self, args: list[Any]) -> None:
        name, value = args[0], 1 if args[1] else 0
        with self.lock:
            old = self.gpio.get(name)
            self.gpio[name] = value
        if old != value:
            log.info("gpio %s: %s -> %s", name, old, value)

    def _uart_read(self, args: list[Any]) -> str | None:
        name, n, timeout_ms = args[0], min(int(args[1]), 1024), int(args[2])
        data = self.uarts[name].read(n, timeout_ms / 1000 / self.config.clock.speed)
        return base64.b64encode(data).decode() if data else None  # null: no string to make

    def _tcp_connect(self, args: list[Any]) -> int:
        ca = args[3] if len(args) > 3 else None
        cafile = None
        if ca:  # a path on the board's flash
            cafile = (self.config.flash_dir / str(ca).lstrip("/").removeprefix("flash/")).resolve()
            if self.config.flash_dir.resolve() not in cafile.parents:
                raise OSError("the CA file must be on the board's flash")
        return self.tcp.connect(args[0], int(args[1]), int(args[2]), cafile)

    def _tcp_read(self, args: list[Any]) -> list[Any]:
        data, eof = self.tcp.read(args[0], min(int(args[1]), 1024))
        return [base64.b64encode(data).decode() if data else None, eof]

    def _sleep_ms(self, ms: Any) -> None:
        length = max(0.0, float(ms)) / 1000 / self.config.clock.speed
        if length > 0:
            length = max(length, self.config.idle_floor_ms / 1000)
        # one select until the sleep is over, or an input (pulse, UART, console: the wake line)
        # or TCP data comes: the firmware's next step handles it at once
        deadline = time.monotonic() + length
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.tcp.buffered():
                return
            lines: list[Any] = [self.wake, *self.tcp.sockets()]
            ready, _, _ = select.select(lines, [], [], left)
            if self.wake in ready:
                self.wake.clear()
                return
            if ready:
                return

    def _on_control(self, req: dict[str, Any]) -> Any:
        """A request on the rig's control socket (board_control.py)."""
        return board_control.answer(self, req)

    def rtc_now(self) -> int:
        if self._rtc_offset is None:
            return 0
        return int(self.config.clock.now() + self._rtc_offset)

    def rtc_shift(self, seconds: float) -> None:
        with self.lock:
            if self._rtc_offset is not None:
                self._rtc_offset += seconds

    def _rtc_set(self, unix_seconds: Any) -> None:
        self._rtc_offset = float(unix_seconds) - self.config.clock.now()

    def _report(self, args: list[Any]) -> None:
        self.reports[str(args[0])] = args[1]
        # when it happened, in fuel of this boot and in (virtual) board time: for the bench
        self.reports[f"{args[0]}@fuel"] = self.vm.fuel_used() if self.vm else 0
        self.reports[f"{args[0]}@ms"] = self.config.clock.ticks_ms()


def _console(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
