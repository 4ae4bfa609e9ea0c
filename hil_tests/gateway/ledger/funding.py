"""The transactions that set a ledger test up: an account enrolled and credited by the operator,
and a channel funded by Alice (a) and Bob (b). Built, not submitted: a test applies them to a bare
LedgerState, builds them into a block, or submits them through whichever client it means."""

from __future__ import annotations

from gateway.ledger import txs
from gateway.ledger.keys import SigningKey
from hil_tests.gateway.ledger.conftest import ALICE, BOB, OPERATOR


def enroll(chain: str, key: SigningKey, name: str = "p", role: str = "prosumer") -> txs.Tx:
    """`enroll_participant` of `key`, signed by the operator."""
    return txs.make(
        "enroll_participant", chain, participant=key.pubkey, name=name, role=role
    ).signed_by(OPERATOR)


def deposit(chain: str, key: SigningKey, amount_msat: int, reference: str = "") -> txs.Tx:
    """`deposit` of `amount_msat` to `key`'s account, signed by the operator."""
    return txs.make(
        "deposit", chain, account=key.pubkey, amount_msat=amount_msat, reference=reference
    ).signed_by(OPERATOR)


def account(
    chain: str,
    key: SigningKey,
    amount_msat: int = 0,
    name: str = "p",
    role: str = "prosumer",
    reference: str = "",
) -> list[txs.Tx]:
    """`key` enrolled, then credited `amount_msat` if any: in the order they must commit."""
    setup = [enroll(chain, key, name, role)]
    if amount_msat:
        setup.append(deposit(chain, key, amount_msat, reference))
    return setup


def channel_fund(
    chain: str,
    a: SigningKey,
    b: SigningKey,
    amount_a_msat: int,
    amount_b_msat: int,
    dispute_blocks: int,
    nonce: int | None = None,
) -> txs.Tx:
    """`channel_fund` of a channel between `a` and `b`, not yet signed (both must sign it)."""
    return txs.make(
        "channel_fund",
        chain,
        nonce,
        a=a.pubkey,
        b=b.pubkey,
        amount_a_msat=amount_a_msat,
        amount_b_msat=amount_b_msat,
        dispute_blocks=dispute_blocks,
    )


def funded_channel(
    chain: str,
    deposit_msat: int,
    amount_a_msat: int,
    amount_b_msat: int,
    dispute_blocks: int,
    role: str = "prosumer",
) -> tuple[list[txs.Tx], txs.Tx]:
    """Alice and Bob enrolled with `deposit_msat` each (Alice's first), and the signed funding of
    a channel between them: (the accounts' transactions, the funding)."""
    setup = [tx for key in (ALICE, BOB) for tx in account(chain, key, deposit_msat, role=role)]
    fund = channel_fund(chain, ALICE, BOB, amount_a_msat, amount_b_msat, dispute_blocks)
    return setup, fund.signed_by(ALICE, BOB)
