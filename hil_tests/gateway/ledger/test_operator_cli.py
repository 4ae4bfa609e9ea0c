"""`sgrid ledger enroll|enroll-meter|deposit|withdraw|balance|info` against a real ledger node."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.ledger import txs
from gateway.ledger.errors import TxRejected
from hil_tests import REPO_ROOT
from hil_tests.gateway.ledger.conftest import ALICE, MALLORY, OPERATOR

METER_PUB = "02" + "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"


def sgrid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; main()", "ledger", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def keyfiles(tmp_path):
    op = tmp_path / "operator.key"
    op.write_text(OPERATOR.secret_hex())
    alice = tmp_path / "alice.key"
    alice.write_text(ALICE.secret_hex())
    mallory = tmp_path / "mallory.key"
    mallory.write_text(MALLORY.secret_hex())
    return op, alice, mallory


def test_operator_brings_a_node_in_from_the_command_line(ledger, keyfiles):
    op, alice, mallory = keyfiles
    url = ledger.running.url
    out = sgrid("enroll", ALICE.pubkey, "--name", "house-3", "--role", "consumer", "--ledger", url,
                "--key", str(op))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "enroll_participant committed" in out.stdout
    out = sgrid(
        "enroll-meter", METER_PUB, "--owner", ALICE.pubkey, "--ledger", url, "--key", str(op)
    )
    assert out.returncode == 0, out.stderr
    out = sgrid(
        "deposit", ALICE.pubkey, "5000", "--reference", "r1", "--ledger", url, "--key", str(op)
    )
    assert out.returncode == 0, out.stderr
    out = sgrid("withdraw", "1000", "--ledger", url, "--key", str(alice))
    assert out.returncode == 0, out.stderr
    out = sgrid("balance", ALICE.pubkey, "--ledger", url)
    assert out.stdout.strip() == "4000 msat (house-3, consumer)"
    assert ledger.client.meter(METER_PUB)["owner"] == ALICE.pubkey
    assert json.loads(sgrid("info", "--ledger", url).stdout)["chain"] == ledger.chain


def test_refusals_name_the_ledger_reason_and_exit_1(ledger, keyfiles):
    op, alice, mallory = keyfiles
    url = ledger.running.url
    out = sgrid("enroll", MALLORY.pubkey, "--name", "m", "--role", "consumer", "--ledger", url,
                "--key", str(mallory))  # fmt: skip
    assert out.returncode == 1 and "refused: not_operator" in out.stderr
    out = sgrid("deposit", MALLORY.pubkey, "5", "--ledger", url, "--key", str(op))
    assert out.returncode == 1 and "refused: unknown_account" in out.stderr
    out = sgrid("balance", MALLORY.pubkey, "--ledger", url)
    assert out.returncode == 1 and "not enrolled" in out.stderr
    out = sgrid("balance", "nothex", "--ledger", url)
    assert out.returncode == 2 and "66 hex" in out.stderr
    out = sgrid("balance", ALICE.pubkey, "--ledger", "http://127.0.0.1:9")
    assert out.returncode == 1 and "cannot reach the ledger" in out.stderr
    out = sgrid("deposit", ALICE.pubkey, str(2**63), "--ledger", url, "--key", str(op))
    assert out.returncode == 2


def test_operator_plus_an_extra_signer_is_unexpected_signer(ledger):
    tx = txs.make("enroll_participant", ledger.chain, participant=ALICE.pubkey, name="a",
                  role="consumer")  # fmt: skip
    with pytest.raises(TxRejected) as err:
        ledger.submit(tx.signed_by(OPERATOR, MALLORY))
    assert err.value.reason == "unexpected_signer"
    with pytest.raises(TxRejected) as err:
        ledger.submit(tx.signed_by(MALLORY))
    assert err.value.reason == "not_operator"


def test_money_on_the_ledger_stays_within_int64(ledger):
    ledger.enroll(ALICE)
    ledger.enroll(MALLORY)
    top = 2**63 - 1

    def deposit(who, amount, ref):
        return ledger.submit(
            txs.make(
                "deposit", ledger.chain, account=who.pubkey, amount_msat=amount, reference=ref
            ).signed_by(OPERATOR)  # fmt: skip
        )

    deposit(ALICE, top, "max")
    for who in (ALICE, MALLORY):
        with pytest.raises(TxRejected) as err:
            deposit(who, 1, "one more " + who.pubkey[:4])
        assert err.value.reason == "amount_overflow"
    assert ledger.client.balance(ALICE.pubkey) == top
    assert ledger.client.balance(MALLORY.pubkey) == 0
    ledger.submit(
        txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=5).signed_by(ALICE)
    )
    deposit(MALLORY, 5, "room again")
    assert ledger.client.balance(MALLORY.pubkey) == 5
