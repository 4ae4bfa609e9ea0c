"""One node of the simulated grid as the rig holds it (its directory, ports, processes and
control API), the rig's errors, and `sgrid` commands run in-process.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boards.emulated.host.bl0942_chip import BL0942Chip
from gateway.ln.errors import LnError
from gateway.ln.node.control import ControlClient
from hil_tests.gateway.gateway_proc import GatewayProcess
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import free_port
from hil_tests.rig.loads import EnergyIntegrator
from hil_tests.rig.microgrid import NodeSpec
from hil_tests.rig.wire import PtyWire
from sgcore.reading import meter_id_from_pubkey

SGRID = [sys.executable, "-c", "from gateway.cli import main; main()"]


class SimError(RuntimeError):
    """A step of the sim that failed; the message is one line naming the node and what failed."""


class NodeTimeout(SimError):
    """A node's control API did not answer (in time)."""


def api_timeout_s(nodes: int, load: float | None = None, cores: int | None = None) -> float:
    """Real seconds the rig waits for one answer of a node's control API: 30 s on a small grid,
    more with the nodes sharing the cores and with the load measured now (every board and
    gateway of a 50-node grid on 2 cores waits its turn: answers took over 30 s at load 110).
    The node answers from memory; a timeout is only ever spent on a node that is not there."""
    load = os.getloadavg()[0] if load is None else load
    cores = cores or os.cpu_count() or 1
    return round(min(API_TIMEOUT_MAX_S, 30.0 * max(1.0, nodes / 10, load / (4 * cores))), 1)


API_TIMEOUT_MAX_S = 300.0
ASK_WORKERS = 16  # at most this many control requests of the rig in flight at once


_CLI_LOCK = threading.Lock()


def in_process(*args: str) -> str:
    """An `sgrid` command run in this process (the same code a person's command runs, without
    an interpreter start-up each: those cost a second of CPU apiece on a 2-core machine)."""
    from click.testing import CliRunner

    from gateway.cli import main as sgrid_main

    with _CLI_LOCK:  # CliRunner swaps sys.stdout: one command at a time
        got = CliRunner().invoke(sgrid_main, list(args))
    if got.exit_code != 0:
        raise SimError(f"sgrid {' '.join(args[:2])}: {got.output.strip()[-600:]}")
    return got.stdout


@dataclass
class SimNode:
    spec: NodeSpec
    dir: Path
    port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    node_id: str = ""
    site_key: str = ""
    gateway: GatewayProcess | None = None
    board: BoardProcess | None = None
    meter_pubkey: bytes = b""
    broker_password: str = ""
    chip: BL0942Chip | None = None
    wire: PtyWire | None = None
    energy: EnergyIntegrator = field(default_factory=EnergyIntegrator)
    api_timeout_s: float = 30.0  # SimGrid sets it from the grid's size and the load
    _client: ControlClient | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def config(self) -> Path:
        return self.dir / "gateway.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def meter_hex(self) -> str:
        return meter_id_from_pubkey(self.meter_pubkey).hex() if self.meter_pubkey else ""

    @property
    def token_file(self) -> str:
        """The node's control API credential ([node] data_dir default: state/node)."""
        return str(self.state_dir / "node" / "control_token")

    def api(
        self, path: str, body: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """A control API call on a kept-alive connection (ControlClient: one per thread asking
        at once; a restarted gateway's closed one is noticed and a new one opened); NodeTimeout
        (one line: the node, the call, the wait) if the node does not answer, LnError for an
        error it answered."""
        wait = self.api_timeout_s if timeout is None else timeout
        try:
            if self._client is None:
                self._client = ControlClient(self.url, token_file=self.token_file)
            return self._client.call(path, body, timeout=wait)
        except LnError as exc:
            if "cannot reach" not in str(exc):
                raise
            why = "timed out" if "timed out" in str(exc) else str(exc).rsplit(": ", 1)[-1]
            raise NodeTimeout(f"{self.name}: control API {path} did not answer within "
                              f"{wait:g} s ({why}); its log: {self.dir / 'gateway.log'}") from None  # fmt: skip

    def close_api(self) -> None:
        """Close the kept-alive control API connections (the next `api` call opens one)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()


def close_client(client: Any) -> None:
    """Close a LedgerClient's pooled connections (this thread's)."""
    for url in client.urls:
        client._drop(url)
