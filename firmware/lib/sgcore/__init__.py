"""sgcore: the formats and cryptography shared by the meters (MicroPython) and the gateway (CPython).

Everything here must run unchanged on both interpreters: only `struct`, `hashlib`,
`binascii` and plain Python; platform choices live in `sgcore.compat`.
"""

VERSION = "0.1.0"
