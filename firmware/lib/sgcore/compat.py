"""The only place where sgcore looks at which Python it runs on."""

import struct
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const  # noqa: F401
except ImportError:  # CPython

    def const(value):
        return value


# struct.error exists on CPython only; MicroPython raises ValueError/OverflowError
PACK_ERRORS = (OverflowError, ValueError, getattr(struct, "error", ValueError))
