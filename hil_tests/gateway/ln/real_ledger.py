"""Channel node processes on the real ledger node (gateway/ledger, in-process, HTTP API)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.ledger import config as ledger_config
from gateway.ledger import service, txs
from gateway.ledger.client import LedgerClient
from gateway.ln.node.keys import load_or_create
from hil_tests.gateway.ledger.conftest import OPERATOR, free_port, write_config
from hil_tests.gateway.ln.node_procs import NodeProc

DEPOSIT = 500_000_000


@dataclass
class RealLedger:
    """A ledger node on a fixed port, so that it can be stopped and started again."""

    directory: Path
    idle_block_ms: int = 30

    def __post_init__(self) -> None:
        self.port = free_port()
        self.config = write_config(self.directory, self.port, self.idle_block_ms)
        self.url = f"http://127.0.0.1:{self.port}"
        self.running: service.RunningLedger | None = None
        self.start()
        self.client = LedgerClient(self.url)
        self.chain = self.client.info()["chain"]

    def start(self) -> None:
        self.running = service.start(ledger_config.load(self.config))

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None

    def enroll(self, pub: str, name: str) -> None:
        """Enroll the gateway key `pub` (hex) and deposit DEPOSIT to it."""
        for tx in (
            txs.make("enroll_participant", self.chain, participant=pub, name=name, role="gateway"),
            txs.make("deposit", self.chain, account=pub, amount_msat=DEPOSIT, reference="t"),
        ):
            self.client.submit(tx.signed_by(OPERATOR))

    def node(self, root: Path, name: str, *args: str, url: str | None = None) -> NodeProc:
        """An enrolled node with a deposit, started on this ledger (reached at `url`, e.g. a
        tcp_proxy.Relay in front of it; default: its own port)."""
        d = root / name
        self.enroll(load_or_create(d).node_id.hex(), name)
        return NodeProc(name, d, root / "unused", ["--ledger-url", url or self.url, *args]).start()
