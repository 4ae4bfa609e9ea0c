"""Rig of the meter's MQTT tests: the firmware's client on an emulated board, and its peers.

- `BoardScript`: a MicroPython script on an `EmulatedBoard` (real image, HAL, loopback TCP) in a
  thread; the test asks it to stop by creating `stop` in its flash directory.
- `ResetProxy`: a TCP proxy between board and broker that can reset every connection (RST).
- `GatewayPeer`: the gateway's side in paho: takes readings in order (drops duplicates, asks for
  a resend on a gap) and answers with acks and commands signed by a site key, as
  gateway/mqtt/messages.py encodes them.
- `run_board_process()`: the same script in a child process, for SIGKILL tests.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import coincurve
import paho.mqtt.client as mqtt

from boards.emulated.host.board import BoardConfig, EmulatedBoard
from boards.emulated.host.wasm import RunOutcome
from gateway.crypto import SiteKey
from gateway.mqtt import messages
from sgcore import topics
from tools.build import build

# MicroPython helpers every script starts with (top-level loop + gc.collect() stay in the script).
SCRIPT_PRELUDE = """
import gc, json, os
import hal
import mqtt as mq
board = hal.Board()

def stop_requested():
    try:
        os.stat("stop")
        return True
    except OSError:
        return False

def result(**kw):
    print("RESULT " + json.dumps(kw))
"""


@functools.cache
def rom() -> Path:
    return build("emulated")


def results(outcome: RunOutcome) -> dict:
    for line in outcome.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError(f"the script printed no RESULT:\n{outcome.stdout}\n{outcome.stderr}")


class BoardScript:
    def __init__(self, flash_dir: Path, code: str, board_id: str = "mqtt-1") -> None:
        self.flash_dir = flash_dir
        flash_dir.mkdir(parents=True, exist_ok=True)
        self.board = EmulatedBoard(
            BoardConfig(flash_dir=flash_dir, board_id=board_id, rom_dir=rom())
        )
        self.code = SCRIPT_PRELUDE + code
        self.outcome: RunOutcome | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.outcome = self.board.run_script(self.code)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> BoardScript:
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        (self.flash_dir / "stop").write_text("1")

    def join(self, timeout: float = 60.0) -> RunOutcome:
        self._thread.join(timeout)
        late = self._thread.is_alive()
        if late:  # Ctrl-C: the VM stops at its next host call
            self.board.console.feed(b"\x03")
            self._thread.join(30)
        if self._thread.is_alive():
            # never close a board whose firmware still runs: its next UART, console or sleep
            # call would use descriptor numbers that belong to other files by then
            raise AssertionError("the board script did not finish (board left open)")
        self.board.close()
        if late:
            raise AssertionError(f"the board script did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        if self.outcome.exit_code != 0:
            raise AssertionError(
                f"MicroPython exited {self.outcome.exit_code}:\n"
                f"{self.outcome.stdout[-4000:]}\n{self.outcome.stderr[-4000:]}"
            )
        return self.outcome


_CHILD = """
import sys
from pathlib import Path
from hil_tests.firmware.mqtt_rig import BoardScript
script = BoardScript(Path(sys.argv[1]), Path(sys.argv[2]).read_text()).start()
out = script.join(3600)
print(out.stdout, flush=True)
"""


def run_board_process(flash_dir: Path, code: str, log: Path) -> subprocess.Popen[bytes]:
    """The script on an emulated board in a child process (its own session: SIGKILL-able)."""
    flash_dir.mkdir(parents=True, exist_ok=True)
    script = flash_dir.parent / "script.py"
    script.write_text(code)
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(flash_dir), str(script)],
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class ResetProxy:
    """Forwards 127.0.0.1:port to the broker; reset() kills every open connection with an RST."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(8)
        self.port = self._srv.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.accepted = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._closed:
            socks = [self._srv]
            with self._lock:
                for a, b in self._pairs:
                    socks += [a, b]
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for s in ready:
                if s is self._srv:
                    self._accept()
                else:
                    self._pump(s)

    def _accept(self) -> None:
        try:
            client, _ = self._srv.accept()
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
        except OSError:
            return
        with self._lock:
            self._pairs.append((client, upstream))
            self.accepted += 1

    def _pump(self, s: socket.socket) -> None:
        with self._lock:
            pair = next((p for p in self._pairs if s in p), None)
        if pair is None:
            return
        other = pair[1] if s is pair[0] else pair[0]
        try:
            data = s.recv(65536)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        self._drop(pair, rst=False)

    def _drop(self, pair: tuple[socket.socket, socket.socket], rst: bool) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for s in pair:
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def reset(self) -> int:
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair, rst=True)
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self.reset()
        self._srv.close()


def seq_of(record: bytes) -> int:
    return struct.unpack_from(">I", record, 19)[0]


class GatewayPeer:
    """The gateway's side of the meter link, in paho, with a persistent session."""

    def __init__(self, host: str, port: int, site: str, meter_id: bytes) -> None:
        self.site_key = SiteKey(coincurve.PrivateKey())
        self.site, self.meter_id, self.hex = site, meter_id, meter_id.hex()
        self.received: list[bytes] = []  # every reading message, duplicates included
        self.stored: list[bytes] = []  # accepted in order
        self.statuses: list[bytes] = []
        self.resends = 0
        self.ack_enabled = True
        self._last_resend = 0.0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"gw-{self.hex[:8]}", clean_session=False
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()  # its SUBACK, not 0.2 s
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(60), "the gateway peer never subscribed"

    def topic(self, leaf: str) -> str:
        return topics.meter_topic(self.site, self.hex, leaf)

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        client.subscribe([(self.topic("reading"), 1), (self.topic("status"), 1)])

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic.endswith("/status"):
            self.statuses.append(msg.payload)
            return
        record = bytes(msg.payload)
        with self._lock:
            self.received.append(record)
            seq, nxt = seq_of(record), len(self.stored)
            if seq == nxt:
                self.stored.append(record)
            elif seq > nxt:
                if time.monotonic() - self._last_resend > 0.5:
                    self._last_resend = time.monotonic()
                    self.resends += 1
                    self.send_cmd("resend", nxt)
                return
            if self.stored and self.ack_enabled:
                self.send_ack(len(self.stored) - 1)

    def send_ack(self, upto: int, record_hash: bytes | None = None) -> None:
        h = record_hash or hashlib.sha256(self.stored[upto]).digest()
        payload = messages.encode_ack(self.site_key, self.meter_id, upto, h)
        self.client.publish(self.topic("ack"), payload, qos=1)

    def send_cmd(self, op: str, arg: int) -> None:
        payload = messages.encode_cmd(self.site_key, self.meter_id, op, arg)
        self.client.publish(self.topic("cmd"), payload, qos=1)

    def wait_stored(self, n: int, timeout: float, script: BoardScript | None = None) -> None:
        deadline = time.monotonic() + timeout
        while len(self.stored) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.stored)} of {n} readings stored in {timeout}s")
            if script is not None and not script.running():
                script.join(1)
                raise AssertionError(f"the board stopped with {len(self.stored)} of {n} stored")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_records(path: Path, records: list[bytes]) -> None:
    path.write_bytes(b"".join(records))
    os.sync()
