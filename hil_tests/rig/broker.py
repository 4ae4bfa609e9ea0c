"""A real mosquitto broker on a free loopback port, for tests and benchmarks.

    with Broker(tmp_path) as broker:
        client.connect(broker.host, broker.port)

`Broker.start()` writes a config (anonymous, no persistence, loopback only), starts
`/usr/sbin/mosquitto -c <conf>`, waits until the port accepts connections and raises
BrokerError with the broker's log if it does not. `stop()` terminates it (SIGKILL after 5 s).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from hil_tests.rig import procs
from hil_tests.rig.ports import free_port

__all__ = ["Broker", "BrokerError", "free_port", "mosquitto_available"]

MOSQUITTO = "/usr/sbin/mosquitto"


class BrokerError(RuntimeError):
    pass


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists() or shutil.which("mosquitto") is not None


class Broker:
    host = "127.0.0.1"

    def __init__(
        self, workdir: Path, port: int | None = None, extra_conf: str = "", conf: str | None = None
    ) -> None:
        """`conf`: the whole config instead of the default anonymous loopback listener (it must
        listen on `port`)."""
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    def start(self, timeout: float = 10.0) -> Broker:
        exe = MOSQUITTO if Path(MOSQUITTO).exists() else shutil.which("mosquitto")
        if exe is None:
            raise BrokerError("mosquitto not installed (apt-get install -y mosquitto)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            self.conf
            if self.conf is not None
            else f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_inflight_messages 0\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 100000\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n" + self.extra_conf
        )
        self.proc = procs.spawn(  # its own process group, never outliving the rig
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise BrokerError(
                    f"mosquitto exited with {self.proc.returncode}: {err}{self.log()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"mosquitto did not listen on {self.port} within {timeout}s: {self.log()}"
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        procs.stop(self.proc, timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
