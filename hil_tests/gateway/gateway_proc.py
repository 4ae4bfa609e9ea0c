"""Real gateway subprocesses for tests and benchmarks (`python -m gateway.service run`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

from hil_tests.rig import procs
from hil_tests.rig.broker import Broker, free_port
from sgcore import topics

# `sgrid gateway` without the rest of the sgrid CLI (other groups may be mid-change)
SGRID_GATEWAY = [sys.executable, "-m", "gateway.service"]


def sgrid_gateway(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SGRID_GATEWAY, *args], capture_output=True, text=True, check=check, timeout=60
    )


def write_config(tmp: Path, broker: Broker, site: str, extra: str = "") -> tuple[Path, int]:
    """A gateway config under `tmp` (state in tmp/state); returns (path, metrics port)."""
    cfg = tmp / "gateway.toml"
    port = free_port()
    cfg.write_text(
        f'[gateway]\nsite = "{site}"\nstate_dir = "state"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "gw-{site}"\n'
        f"[ingest]\nresend_cooldown_s = 0.5\n"
        f'[metrics]\nenabled = true\nlisten = "127.0.0.1"\nport = {port}\n' + extra
    )
    return cfg, port


class GatewayProcess:
    """`sgrid gateway run` as a subprocess, with an sd_notify socket to see READY/WATCHDOG/STOPPING."""

    def __init__(
        self,
        config: Path,
        broker: Broker,
        site: str,
        watchdog_usec: int = 0,
        extra_env: dict[str, str] | None = None,
        command: list[str] | None = None,  # `sgrid gateway` of another install (deploy tests)
    ) -> None:
        self.config, self.broker, self.site = config, broker, site
        # unix socket paths are limited to 107 bytes: keep this one out of deep test directories
        self.notify_path = Path(tempfile.mkdtemp(prefix="sgn-")) / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.2)
        self.notifications: list[str] = []
        env = dict(
            os.environ,
            NOTIFY_SOCKET=str(self.notify_path),
            PYTHONUNBUFFERED="1",
            **(extra_env or {}),
        )
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.log_path = config.parent / "gateway.log"
        self._log = open(self.log_path, "ab")
        self.proc = procs.spawn(  # its own process group, never outliving the rig
            [*(command or SGRID_GATEWAY), "run", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._reader = threading.Thread(target=self._read_notify, daemon=True)
        self._reader.start()

    def _read_notify(self) -> None:
        while True:
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                if self.proc.poll() is not None and self.notify.fileno() == -1:
                    return
                continue
            except OSError:
                return
            self.notifications.extend(data.decode().splitlines())

    def wait_notified(self, what: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what in self.notifications:
                return True
            if self.proc.poll() is not None:
                return what in self.notifications
            time.sleep(0.02)
        return False

    def wait_online(self, timeout: float = 60.0) -> None:
        """READY=1, then the gateway's retained "online" on the broker (it has subscribed)."""
        assert self.wait_notified("READY=1", timeout), self.log()
        seen = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(client, userdata, msg):
            if msg.payload == b"online":
                seen.set()

        c.on_message = on_message
        c.connect(self.broker.host, self.broker.port)
        c.subscribe(topics.gateway_status_topic(self.site), qos=1)
        c.loop_start()
        try:
            assert seen.wait(timeout), "gateway never came online:\n" + self.log()
        finally:
            c.disconnect()
            c.loop_stop()
        time.sleep(0.2)  # its SUBSCRIBE precedes the "online" publish; give the broker a moment

    def metrics(self, port: int) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def terminate(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        procs.REAPER.forget(self.proc.pid)
        return code

    def kill(self) -> None:
        procs.kill(self.proc)

    def close(self) -> None:
        procs.kill(self.proc)
        self.notify.close()
        self._log.close()
        try:
            self.notify_path.unlink()
        except OSError:
            pass
