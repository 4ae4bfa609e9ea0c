"""Which modules device-side code may import: what an ESP32 MicroPython build provides.

Checked by hil_tests/boards/test_micropython_conformance.py for every file under firmware/ and
every board's device/ folder. The emulated board's HAL may also import `host` (its bridge).
"""

from __future__ import annotations

# Built into the ESP32_GENERIC port of MicroPython 1.2x (plus the frozen ntptime).
ESP32_MODULES: frozenset[str] = frozenset(
    {
        "array",
        "binascii",
        "builtins",
        "cmath",
        "collections",
        "cryptolib",
        "deflate",
        "errno",
        "esp",
        "esp32",
        "framebuf",
        "gc",
        "hashlib",
        "heapq",
        "io",
        "json",
        "machine",
        "math",
        "micropython",
        "neopixel",  # frozen by ports/esp32/boards/manifest.py (require("neopixel"))
        "network",
        "ntptime",
        "os",
        "platform",
        "random",
        "re",
        "select",
        "socket",
        "ssl",
        "struct",
        "sys",
        "time",
        "uctypes",
        "vfs",
    }
)

EMULATED_EXTRA: frozenset[str] = frozenset(
    {"host", "umachine"}
)  # the bridge; the WASI port's machine
