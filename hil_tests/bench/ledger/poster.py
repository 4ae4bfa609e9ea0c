"""The benchmark's HTTP client: one keep-alive connection posting pre-encoded JSON bodies."""

from __future__ import annotations

import json
import socket
import urllib.parse
from typing import Any


class LeanPoster:
    """A keep-alive HTTP/1.1 client for one connection that does only what the load needs
    (http.client's header parsing cost the client threads more CPU than the ledger's requests
    cost the ledger: they share the machine's two cores with it)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = parts.netloc.encode()

    def post(self, path: str, body: bytes) -> Any:
        head = (
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), self.host, len(body))
        )
        self.sock.sendall(head + body)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv()
        lines = data[:end].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        length = next(
            int(v)
            for n, _, v in (x.partition(b":") for x in lines[1:])
            if n.lower() == b"content-length"
        )
        while len(data) < end + 4 + length:
            data += self._recv()
        raw = data[end + 4 : end + 4 + length]
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status} {raw[:200]!r}")
        return json.loads(raw)

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the ledger closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()
