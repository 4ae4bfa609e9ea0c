"""Ledger fixtures: keys, a config directory, an in-process node and a helper that funds accounts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.ledger import config as ledger_config
from gateway.ledger import service, txs
from gateway.ledger.client import LedgerClient
from gateway.ledger.keys import SigningKey
from hil_tests import REPO_ROOT
from hil_tests.rig import ports, procs

# Fixed test keys so failures are reproducible.
OPERATOR = SigningKey(bytes([1] * 32))
VALIDATOR = SigningKey(bytes([2] * 32))
ALICE = SigningKey(bytes([3] * 32))
BOB = SigningKey(bytes([4] * 32))
MALLORY = SigningKey(bytes([5] * 32))
GATEWAY = SigningKey(bytes([6] * 32))


def free_port() -> int:
    """A port no other rig is handed (hil_tests/rig/ports.py): binding port 0 and closing it
    let the kernel give the same port to another worker's outgoing connection meanwhile."""
    return ports.free_port()


def write_config(
    directory: Path,
    port: int = 0,
    idle_block_ms: int = 30,
    replication: str = "",
    db: str = "ledger.sqlite",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "validator.key").write_text(VALIDATOR.secret_hex())
    path = directory / "ledger.toml"
    path.write_text(
        f"""[ledger]
name = "test-grid"
operator = "{OPERATOR.pubkey}"
validator_key_file = "validator.key"
genesis_time_ms = 1764000000000
db = "{db}"
listen = "127.0.0.1:{port}"
idle_block_ms = {idle_block_ms}
commit_timeout_s = 20
{replication}"""
    )
    return path


@dataclass
class Ledger:
    client: LedgerClient
    chain: str
    running: service.RunningLedger
    config_path: Path

    def submit(self, tx: txs.Tx) -> dict:
        return self.client.submit(tx)

    def enroll(self, key: SigningKey, role: str = "prosumer", deposit: int = 0) -> None:
        self.submit(
            txs.make(
                "enroll_participant", self.chain, participant=key.pubkey, name="p", role=role
            ).signed_by(OPERATOR)
        )
        if deposit:
            self.submit(
                txs.make(
                    "deposit", self.chain, account=key.pubkey, amount_msat=deposit, reference="t"
                ).signed_by(OPERATOR)
            )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    path = write_config(tmp_path / "node")
    running = service.start(ledger_config.load(path))
    client = LedgerClient(running.url)
    try:
        yield Ledger(client, client.info()["chain"], running, path)
    finally:
        running.stop()


def start_process(config_path: Path) -> tuple[subprocess.Popen[str], str]:
    """`sgrid ledger run` as a real subprocess; returns it and its base URL once listening."""
    proc = procs.spawn(  # its own process group, reaped if the test process dies
        [
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            "ledger",
            "run",
            "--config",
            str(config_path),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening" in line:
            return proc, line.split("listening", 1)[1].strip()
        if proc.poll() is not None:
            break
    procs.kill(proc)
    raise RuntimeError(f"ledger did not start: {proc.stderr.read() if proc.stderr else ''}")
