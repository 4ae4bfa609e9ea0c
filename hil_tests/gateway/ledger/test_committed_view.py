"""Readers see the state of the stored blocks (`Chain.view`): equal to the producer's state once
a block is stored, never a block still being written, and never waiting for its write."""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger import config as ledger_config
from gateway.ledger import txs
from gateway.ledger.chain import Chain
from gateway.ledger.client import LedgerClient
from gateway.ledger.state import LedgerState
from gateway.ledger.store import Store
from hil_tests.gateway.ledger import funding
from hil_tests.gateway.ledger.conftest import ALICE, BOB, OPERATOR, VALIDATOR, write_config

STEP = st.tuples(
    st.sampled_from(["deposit", "withdraw", "fund", "close", "enroll"]),
    st.sampled_from([ALICE, BOB]),
    st.integers(0, 5_000),
)
BLOCKS = st.lists(st.lists(STEP, min_size=0, max_size=6), min_size=1, max_size=6)


def _without_ids(state: LedgerState) -> LedgerState:
    return dataclasses.replace(state, tx_ids=set())


def _tx(chain: Chain, op: str, key, amount: int, nonce: int) -> txs.Tx:
    cid = chain.chain_id
    other = BOB if key is ALICE else ALICE
    if op == "deposit":
        return txs.make(
            "deposit", cid, nonce, account=key.pubkey, amount_msat=amount + 1, reference=""
        ).signed_by(OPERATOR)
    if op == "withdraw":  # often more than the account holds: refused inside the block
        return txs.make(
            "withdraw", cid, nonce, account=key.pubkey, amount_msat=amount + 1
        ).signed_by(key)
    if op == "fund":
        return funding.channel_fund(cid, key, other, amount, amount // 2, 2, nonce).signed_by(
            key, other
        )
    if op == "close":
        channel = next(iter(chain.state.channels.values()), None)
        cap = channel.capacity if channel else amount
        return txs.make(
            "channel_close",
            cid,
            nonce,
            channel=channel.id if channel else "00" * 32,
            balance_a_msat=cap // 3,
            balance_b_msat=cap - cap // 3,
        ).signed_by(ALICE, BOB)
    return txs.make(  # enrolled already after the first: refused
        "enroll_participant", cid, nonce, participant=key.pubkey, name="p", role="prosumer"
    ).signed_by(OPERATOR)


@settings(max_examples=40, deadline=None)
@given(BLOCKS)
def test_the_view_equals_the_state_after_every_stored_block(blocks):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ledger_config.load(write_config(Path(tmp) / "node"))
        chain = Chain(Store(Path(tmp) / "node" / "view.sqlite"), VALIDATOR, cfg.genesis())
        try:
            nonce = 0
            for height, steps in enumerate(blocks, start=1):
                candidates = []
                for op, key, amount in steps:
                    nonce += 1
                    candidates.append(_tx(chain, op, key, amount, nonce))
                chain.build(candidates, 1_764_000_000_000 + height)
                assert _without_ids(chain.view) == _without_ids(chain.state)
                assert chain.view.conservation_error() is None
                assert chain.view.height == chain.tip.height
            chain.store.close()
            restarted = Chain(Store(Path(tmp) / "node" / "view.sqlite"), VALIDATOR, cfg.genesis())
            assert _without_ids(restarted.view) == _without_ids(chain.view)
            restarted.store.close()
        finally:
            chain.store.close()


def test_a_balance_read_neither_waits_for_nor_sees_a_block_being_written(ledger):
    """Reads used to wait behind the producer's lock for a whole block build, its fsync too."""
    ledger.enroll(ALICE, deposit=1_000)
    store = ledger.running.node.chain.store
    real_append = store.append
    writing, release = threading.Event(), threading.Event()

    def slow_append(*args, **kwargs):
        writing.set()
        assert release.wait(60)
        return real_append(*args, **kwargs)

    store.append = slow_append
    deposit = txs.make(
        "deposit", ledger.chain, account=ALICE.pubkey, amount_msat=500, reference="slow"
    ).signed_by(OPERATOR)
    submitter = threading.Thread(target=ledger.submit, args=(deposit,))
    submitter.start()
    try:
        assert writing.wait(30)
        seen: list[int] = []
        reader = threading.Thread(
            target=lambda: seen.append(LedgerClient(ledger.running.url).balance(ALICE.pubkey))
        )
        reader.start()
        reader.join(30)  # the block stays unwritten all along: an old reader never returns
        assert not reader.is_alive() and seen == [1_000]
        assert (
            LedgerClient(ledger.running.url).info()["height"]
            == ledger.running.node.chain.tip.height
        )
    finally:
        release.set()
        submitter.join(30)
        store.append = real_append
    assert LedgerClient(ledger.running.url).balance(ALICE.pubkey) == 1_500
