"""TCP sockets of the emulated board's network interface: loopback only."""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
from pathlib import Path


class LoopbackOnlyError(OSError):
    pass


class TcpTable:
    MAX_SOCKETS = 4  # lwIP on an ESP32 is configured for a handful of sockets too

    def __init__(self) -> None:
        self._socks: dict[int, socket.socket] = {}
        self._next = 1

    def connect(self, host: str, port: int, timeout_ms: int, cafile: Path | None = None) -> int:
        """A loopback TCP connection; with `cafile`, TLS verifying the server against it."""
        addr = socket.gethostbyname(host)
        if not ipaddress.ip_address(addr).is_loopback:
            raise LoopbackOnlyError(f"the emulated board only reaches loopback, not {host}")
        if len(self._socks) >= self.MAX_SOCKETS:
            raise OSError("ENFILE: too many open sockets")
        sock = socket.create_connection((addr, port), timeout=max(timeout_ms, 1) / 1000)
        if cafile is not None:
            ctx = ssl.create_default_context(cafile=str(cafile))
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError):
                sock.close()
                raise
        sock.setblocking(False)
        handle = self._next
        self._next += 1
        self._socks[handle] = sock
        return handle

    def write(self, handle: int, data: bytes) -> int:
        sock = self._socks[handle]
        sock.setblocking(True)
        sock.settimeout(5)
        try:
            sock.sendall(data)
        finally:
            sock.setblocking(False)
        return len(data)

    def read(self, handle: int, n: int) -> tuple[bytes, bool]:
        sock = self._socks[handle]
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        if not pending:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return b"", False
        try:
            data = sock.recv(n)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return b"", False
        except OSError:  # reset by peer
            return b"", True
        return data, not data

    def has_data(self) -> bool:
        return self.buffered() or bool(select.select(self.sockets(), [], [], 0)[0])

    def buffered(self) -> bool:
        """Decrypted bytes wait inside a TLS layer (no select sees them)."""
        return any(isinstance(s, ssl.SSLSocket) and s.pending() for s in self._socks.values())

    def sockets(self) -> list[socket.socket]:
        return list(self._socks.values())

    def close(self, handle: int) -> None:
        sock = self._socks.pop(handle, None)
        if sock is not None:
            sock.close()

    def close_all(self) -> None:
        for handle in list(self._socks):
            self.close(handle)
