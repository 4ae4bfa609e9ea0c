"""SIGKILL the ledger process while transactions stream in: nothing acknowledged is lost."""

import signal
import threading

from click.testing import CliRunner

from gateway.ledger import txs
from gateway.ledger.cli import ledger as ledger_cli
from gateway.ledger.client import LedgerClient, NotFound
from gateway.ledger.errors import LedgerError
from hil_tests.gateway.ledger import funding
from hil_tests.gateway.ledger.conftest import (
    ALICE,
    free_port,
    start_process,
    write_config,
)

DEPOSIT = 1_000_000


def test_sigkill_mid_submit_loses_no_acknowledged_transaction(tmp_path):
    config = write_config(tmp_path / "node", port=free_port())
    proc, url = start_process(config)
    try:
        client = LedgerClient(url, timeout=5, retries=1)
        chain = client.info()["chain"]
        for tx in funding.account(chain, ALICE, DEPOSIT, name="a"):
            client.submit(tx)
        attempted: list[str] = []
        acked: list[str] = []
        enough = threading.Event()

        def stream(worker: int) -> None:
            for i in range(10_000):
                tx = txs.make(
                    "withdraw", chain, nonce=f"{worker}-{i}", account=ALICE.pubkey, amount_msat=1
                ).signed_by(ALICE)
                attempted.append(tx.id)
                try:
                    acked.append(client.submit(tx)["tx_id"])
                except LedgerError:
                    return
                if len(acked) >= 40:
                    enough.set()

        workers = [threading.Thread(target=stream, args=(w,)) for w in range(3)]
        for w in workers:
            w.start()
        assert enough.wait(60)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for w in workers:
            w.join(30)
        proc, url = start_process(config)
        client = LedgerClient(url)
        committed = 0
        for tx_id in attempted:
            try:
                client.tx(tx_id)
                committed += 1
            except NotFound:
                assert tx_id not in acked, "an acknowledged transaction was lost"
        assert committed >= len(acked) >= 40
        assert client.balance(ALICE.pubkey) == DEPOSIT - committed
    finally:
        proc.kill()
        proc.wait()
    result = CliRunner().invoke(ledger_cli, ["verify", "--config", str(config)])
    assert result.exit_code == 0, result.output
