"""An answer to a request of the pooled HTTP server written later, by the thread that has it
(e.g. the ledger's block producer once the block is stored), without waiting on the client."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from gateway.lean_http import whole_answer

if TYPE_CHECKING:
    from gateway.pooled_http import Conn, PooledHTTPServer


class DeferredAnswer:
    """The answer to one request, written later by whichever thread has it (e.g. the thread
    that made the result durable), then the connection goes back to the selector.

    It is written without blocking when the socket takes it whole (the usual case: a small
    answer, an empty send buffer); the server's selector writes the rest as the client reads
    it (closing the connection after its write timeout), so a client that does not read
    stalls no thread."""

    __slots__ = ("_server", "_conn", "_handler", "_keep", "_sent")

    def __init__(
        self, server: PooledHTTPServer, conn: Conn, handler: BaseHTTPRequestHandler, keep: bool
    ) -> None:
        self._server, self._conn, self._keep, self._sent = server, conn, keep, False
        self._handler = handler  # its request line, for the log line

    def send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        if self._sent:
            return
        self._sent = True
        handler = self._handler
        handler.log_request(status)
        data = whole_answer(handler, status, body, content_type)
        server, conn = self._server, self._conn
        try:
            sent = write_now(conn.sock, data)
            if sent < len(data):
                server.write_later(PendingWrite(conn, data[sent:], self._keep))
            else:
                server.give_back(conn, self._keep)
        except OSError:  # the peer is gone: nothing more to write, close it
            server.give_back(conn, False)
        except BaseException:  # never leave the connection busy (nobody would close it)
            server.give_back(conn, False)
            raise


def write_now(sock: socket.socket, data: bytes | bytearray) -> int:
    """Write what the socket takes at once; the count written (0 when its buffer is full).

    Not `sock.send(data, MSG_DONTWAIT)`: on a socket with a timeout CPython first waits for it
    to be writable, up to the timeout, so a client that does not read stalled the sender (the
    ledger's block producer) for the whole write timeout. The descriptor itself is non-blocking
    (a socket with a timeout is), so os.write returns at once."""
    try:
        return os.write(sock.fileno(), data)
    except (BlockingIOError, InterruptedError):
        return 0


@dataclass(slots=True)
class PendingWrite:
    """The rest of an answer that the socket did not take at once: the selector writes it."""

    conn: Conn
    data: bytes
    keep: bool
