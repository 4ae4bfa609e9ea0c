"""The rig's side door into an emulated board: a unix socket speaking JSON lines.

Requests: {"op": "state"}, {"op": "pulses", "pin": "s0", "n": 5},
{"op": "set_input", "pin": "button", "value": 0|1}, {"op": "network_time", "value": true|false},
{"op": "rtc_shift", "seconds": 3600} (a wrongly set clock).
Each gets one JSON line back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


class ControlServer:
    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        outer = self

        class _Conn(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    try:
                        reply = {"ok": True, "value": handler(json.loads(line))}
                    except Exception as exc:  # reported to the rig, never kills the board
                        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                    self.wfile.write(json.dumps(reply).encode() + b"\n")

        class _Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True

        self._server = _Server(path, _Conn)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        log.debug("control socket at %s (%s)", path, outer)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class ControlClient:
    """Used by the rig and tests to talk to a running board process."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._file = self._sock.makefile("rwb")

    def request(self, **req: Any) -> Any:
        self._file.write(json.dumps(req).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise ConnectionError("board closed its control socket")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        return reply["value"]

    def close(self) -> None:
        self._file.close()
        self._sock.close()
