"""`sgrid ledger verify` re-validates the chain and names the first block that was tampered with."""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from gateway.ledger import blocks, txs
from gateway.ledger.cli import ledger as ledger_cli
from hil_tests.gateway.ledger.conftest import ALICE, BOB, MALLORY


def _build_history(ledger):
    ledger.enroll(ALICE, deposit=10_000)  # blocks 1, 2
    ledger.enroll(BOB, deposit=10_000)  # blocks 3, 4
    for amount in (100, 200, 300):  # blocks 5, 6, 7
        ledger.submit(
            txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=amount).signed_by(
                ALICE
            )
        )
    ledger.running.stop()
    return ledger.config_path.parent / "ledger.sqlite"


def _verify(config_path):
    return CliRunner().invoke(ledger_cli, ["verify", "--config", str(config_path)])


def test_untouched_chain_verifies(ledger):
    _build_history(ledger)
    result = _verify(ledger.config_path)
    assert result.exit_code == 0, result.output
    assert "OK: 8 blocks, 7 transactions" in result.output


def _edit_amount(row):
    body = json.loads(row["txs"])
    body[0]["body"]["amount_msat"] = 1
    return {"txs": json.dumps(body)}


def _edit_time(row):
    header = json.loads(row["header"])
    header["time_ms"] += 1
    return {"header": json.dumps(header)}


def _resign_with_forged_key(row):
    body = json.loads(row["txs"])
    body[0]["body"]["amount_msat"] = 1
    header = json.loads(row["header"])
    header["tx_root"] = blocks.tx_root([txs.Tx(t["body"], t["sigs"]).id for t in body])
    digest = blocks.header_hash(header)
    return {
        "txs": json.dumps(body),
        "header": json.dumps(header),
        "hash": digest,
        "signature": MALLORY.sign_digest(bytes.fromhex(digest)),
    }


def _corrupt_json(row):
    return {"txs": "[{not json"}


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_edit_amount, "tx_root"),
        (_edit_time, "header hash"),
        (_resign_with_forged_key, "validator signature"),
        (_corrupt_json, "not readable"),
    ],
    ids=["tx-edited", "header-edited", "re-signed-by-another-key", "garbage"],
)
def test_tampered_block_is_named(ledger, edit, reason):
    db = _build_history(ledger)
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM blocks WHERE height=6").fetchone())
        for column, value in edit(row).items():
            conn.execute(f"UPDATE blocks SET {column}=? WHERE height=6", (value,))
    result = _verify(ledger.config_path)
    assert result.exit_code == 1
    assert "first bad block 6" in result.output and reason in result.output, result.output


def test_deleted_block_breaks_the_chain_at_that_height(ledger):
    db = _build_history(ledger)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM blocks WHERE height=4")
    result = _verify(ledger.config_path)
    assert result.exit_code == 1 and "first bad block 4" in result.output, result.output


def test_double_spend_slipped_into_history_is_caught(ledger):
    """A validator that signs a block with an overspending tx: rules re-run by verify refuse it."""
    from gateway.ledger.config import load
    from gateway.ledger.store import Store

    db = _build_history(ledger)
    store = Store(db)
    tip = store.block(store.tip_height())
    overspend = txs.make(
        "withdraw", tip.header["chain"], account=ALICE.pubkey, amount_msat=10**6
    ).signed_by(ALICE)
    key = load(ledger.config_path).validator_key()
    store.append(blocks.seal(tip, tip.header["chain"], [overspend], tip.header["time_ms"] + 1, key))
    store.close()
    result = _verify(ledger.config_path)
    assert result.exit_code == 1
    assert (
        f"first bad block {tip.height + 1}" in result.output
        and "insufficient_funds" in result.output
    )


def test_replayed_transaction_in_a_later_block_is_caught(ledger):
    from gateway.ledger.config import load
    from gateway.ledger.store import Store

    db = _build_history(ledger)
    store = Store(db)
    tip = store.block(store.tip_height())
    replayed = store.block(5).txs[0]
    store.close()  # a forger writes the row by hand (Store.append of a sealed block would do too)
    key = load(ledger.config_path).validator_key()
    block = blocks.seal(tip, tip.header["chain"], [replayed], tip.header["time_ms"] + 1, key)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO blocks VALUES (?,?,?,?,?)",
            (
                block.height,
                block.hash,
                json.dumps(block.header),
                block.signature,
                json.dumps([replayed.to_json()]),
            ),
        )
    result = _verify(ledger.config_path)
    assert result.exit_code == 1
    assert f"first bad block {tip.height + 1}" in result.output and "replay" in result.output


def test_a_block_that_fails_to_reach_disk_leaves_no_trace_in_what_readers_see(tmp_path):
    from gateway.ledger import config as ledger_config
    from gateway.ledger import txs
    from gateway.ledger.chain import Chain
    from gateway.ledger.store import Store
    from hil_tests.gateway.ledger.conftest import ALICE, OPERATOR, VALIDATOR, write_config

    cfg = ledger_config.load(write_config(tmp_path / "node"))
    store = Store(tmp_path / "node" / "direct.sqlite")
    chain = Chain(store, VALIDATOR, cfg.genesis())
    enroll = txs.make(
        "enroll_participant", chain.chain_id, participant=ALICE.pubkey, name="a", role="prosumer"
    )
    chain.build([enroll.signed_by(OPERATOR)], 1_764_000_001_000)
    deposit = txs.make(
        "deposit", chain.chain_id, account=ALICE.pubkey, amount_msat=500, reference="r"
    )

    def broken_append(*args, **kwargs):
        raise OSError("disk full")

    real, store.append = store.append, broken_append
    with pytest.raises(OSError):
        chain.build([deposit.signed_by(OPERATOR)], 1_764_000_002_000)
    store.append = real
    assert chain.state.balances.get(ALICE.pubkey, 0) == 0 and chain.tip.height == 1
    chain.build([deposit.signed_by(OPERATOR)], 1_764_000_003_000)  # and it goes on from there
    assert chain.state.balances[ALICE.pubkey] == 500
