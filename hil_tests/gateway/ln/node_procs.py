"""Gateway node processes on loopback sharing a FileLedger: the harness of the process tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.ln.errors import LnError
from gateway.ln.node.control import ControlClient
from gateway.ln.node.keys import load_or_create
from gateway.ln.node.ledger_file import FileLedger
from hil_tests import REPO_ROOT
from hil_tests.rig import procs
from hil_tests.rig.polling import wait_until

DEPOSIT = 10**12


@dataclass
class NodeProc:
    name: str
    data_dir: Path
    ledger_file: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    node_id: str = ""
    port: int = 0
    url: str = ""
    _client: ControlClient | None = field(default=None, repr=False, compare=False)

    def start(
        self, crash: str = "", env: dict[str, str] | None = None, module: str = ""
    ) -> NodeProc:
        """Start the node process; ``crash="<point>:<n>"`` runs it with SIGKILL fault injection
        (see crashing_node.py), ``module`` another wrapper of the node's main (lossy_node.py)."""
        entry = ["hil_tests.gateway.ln.crashing_node", crash] if crash else ["gateway.ln.node"]
        if module:
            entry = [module]
        cmd = [
            sys.executable,
            "-m",
            *entry,
            "--data-dir",
            str(self.data_dir),
            "--ledger-file",
            str(self.ledger_file),
            "--tick",
            "0.05",
            *self.args,
        ]
        if self.port:
            cmd += ["--port", str(self.port)]
        log = open(self.data_dir / "node.log", "a")  # noqa: SIM115 - lives as long as the process
        self.proc = procs.spawn(  # its own process group, reaped if the test process dies
            cmd,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.kill()
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{self.log_tail()}")
        info = json.loads(line[6:])
        self.node_id, self.port = info["node_id"], info["port"]
        self.url = f"http://127.0.0.1:{info['control']}"
        return self

    def log_tail(self, n: int = 40) -> str:
        lines = (self.data_dir / "node.log").read_text().splitlines()
        return "\n".join(lines[-n:])

    def crashed(self) -> int:
        """1 if the log shows the fault injection fired since the last check."""
        text = (self.data_dir / "node.log").read_text()
        n = text.count("fault injection: SIGKILL")
        seen, self._crashes = getattr(self, "_crashes", 0), n
        return int(n > seen)

    def kill(self) -> None:
        """SIGKILL the node's process group (a frozen, SIGSTOPped node too)."""
        procs.kill(self.proc)
        self.proc = None
        self.drop_client()

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s."""
        procs.stop(self.proc, timeout=5.0)
        self.proc = None
        self.drop_client()

    def drop_client(self) -> None:
        """Close the kept-alive control connections (the next `api` call opens one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def token_file(self) -> str:
        """The node's control API credential (created by the node, mode 0600)."""
        return str(self.data_dir / "control_token")

    def api(self, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        """A control API request on a kept-alive connection (ControlClient)."""
        client = self._client
        if client is None or client.url != self.url:  # first call, or restarted elsewhere
            if client is not None:
                client.close()
            client = self._client = ControlClient(self.url, token_file=self.token_file)
        return client.call(path, body, timeout)

    def channels(self) -> list[dict[str, Any]]:
        return self.api("/channels")

    def channel_with(self, other: NodeProc) -> dict[str, Any]:
        return next(c for c in self.channels() if c["peer"] == other.node_id)

    def connect(self, other: NodeProc) -> None:
        self.api("/connect", {"port": other.port, "node_id": other.node_id})

    def invoice(self, amount: int, count: int = 1) -> list[str]:
        now = int(time.time())
        body = {
            "amount_msat": amount,
            "start": now + 3600,
            "end": now + 7200,
            "kwh": 1.5,
            "node": self.name,
            "count": count,
        }
        return self.api("/invoice", body)["invoices"]

    def pay_once_routed(self, payee: NodeProc, amount: int, timeout: float = 60) -> dict[str, Any]:
        """Pay `payee` once gossip has given this node a route and the hops' charges: a NoRoute
        refusal and a failed payment (a hop's charge not heard of yet) are tried again, with a
        new invoice, until one succeeds; its answer. A condition, not a count of tries: on a
        loaded machine gossip takes seconds (a bare first /pay was refused NoRoute in a loaded
        run of the suite)."""

        def succeeded() -> dict[str, Any] | None:
            try:
                answer = self.api("/pay", {"invoice": payee.invoice(amount)[0]})
            except LnError as exc:
                if "NoRoute" not in str(exc):
                    raise
                return None
            return answer if answer["status"] == "succeeded" else None

        return wait_until(succeeded, timeout, f"a payment from {self.name} to {payee.name}")


@dataclass
class Grid:
    root: Path
    ledger: FileLedger = field(init=False)
    nodes: dict[str, NodeProc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ledger = FileLedger(self.root / "ledger.sqlite")

    def add(self, name: str, *args: str) -> NodeProc:
        d = self.root / name
        keys = load_or_create(d)
        self.ledger.deposit(keys.node_id, DEPOSIT)
        node = NodeProc(name, d, self.root / "ledger.sqlite", list(args)).start()
        self.nodes[name] = node
        return node

    def close(self) -> None:
        for n in self.nodes.values():
            n.kill()

    def money(self) -> int:
        """All msat on the ledger: balances plus channels not yet paid out."""
        return self.ledger._load().money()
