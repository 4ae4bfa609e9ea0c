"""A funded channel on a bare LedgerState and signed commitment states for it (real keys, real
rules): what the `channel_supersede` tests build on. On CHAIN unless a `chain` is given (the
transactions for a real node's or Chain's chain)."""

from __future__ import annotations

import hashlib
from typing import Any

from gateway.ledger import blocks, rules, txs
from gateway.ledger.keys import SigningKey
from gateway.ledger.state import LedgerState
from gateway.ln.channel import ledger_bodies
from hil_tests.gateway.ledger import funding
from hil_tests.gateway.ledger.conftest import ALICE, BOB, OPERATOR, VALIDATOR

CHAIN = blocks.genesis("supersede", OPERATOR.pubkey, VALIDATOR, 0).hash
DEPOSIT = 10_000
FUND_A, FUND_B = 6_000, 4_000
CAPACITY = FUND_A + FUND_B
SUPPLY = 2 * DEPOSIT


def funded(dispute_blocks: int, height: int = 1) -> tuple[LedgerState, str]:
    """Alice (a) and Bob (b) enrolled with DEPOSIT each and a channel of CAPACITY between them."""
    state = LedgerState.genesis(CHAIN, OPERATOR.pubkey, VALIDATOR.pubkey)
    setup, fund = funded_txs(CHAIN, dispute_blocks)
    for tx in [*setup, fund]:
        rules.apply(state, tx, height)
    return state, fund.id


def funded_txs(chain: str, dispute_blocks: int) -> tuple[list[txs.Tx], txs.Tx]:
    """What `funded` applies, for a ledger of chain `chain`: (the accounts' txs, the funding)."""
    return funding.funded_channel(chain, DEPOSIT, FUND_A, FUND_B, dispute_blocks, role="gateway")


def secret(holder: SigningKey, number: int) -> bytes:
    """The per-commitment secret of `holder`'s state `number`."""
    return hashlib.sha256(b"%s/%d" % (holder.pubkey.encode(), number)).digest()


def other(key: SigningKey) -> SigningKey:
    return BOB if key is ALICE else ALICE


def state(
    channel: str,
    number: int,
    holder: SigningKey,
    balance_a: int,
    htlcs: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    chain: str = CHAIN,
) -> dict[str, Any]:
    """A valid state: b's balance is what is left of the capacity."""
    rest = CAPACITY - balance_a - sum(h["amount_msat"] for h in htlcs)
    rev = hashlib.sha256(secret(holder, number)).hexdigest()
    return txs.commitment_state(
        chain, channel, number, balance_a, rest, holder.pubkey, rev, sorted_htlcs(htlcs)
    )


def sorted_htlcs(htlcs: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return sorted(htlcs, key=lambda h: (h["offerer"], h["id"]))


def force_close(
    s: dict[str, Any], holder: SigningKey, signer: SigningKey | None = None, chain: str = CHAIN
) -> txs.Tx:
    sig = bytes.fromhex(txs.sign_state(s, signer or other(holder)))
    return txs.Tx(ledger_bodies.force_close_body(chain, s, sig)).signed_by(holder)


def supersede(
    s: dict[str, Any], holder: SigningKey, signer: SigningKey | None = None, chain: str = CHAIN
) -> txs.Tx:
    """`channel_supersede` of `s` as a node builds it, signed by the holder; the state signed by
    `signer` (by default the counterparty, as the rule wants)."""
    sig = bytes.fromhex(txs.sign_state(s, signer or other(holder)))
    return txs.Tx(ledger_bodies.supersede_body(chain, s, sig)).signed_by(holder)


def penalty(channel: str, party: str, revealed: bytes, chain: str = CHAIN) -> txs.Tx:
    key = ALICE if party == "a" else BOB
    body = dict(channel=channel, party=party, secret=revealed.hex())
    return txs.make("channel_penalty", chain, nonce="penalty", **body).signed_by(key)


def settle(channel: str, party: str) -> txs.Tx:
    key = ALICE if party == "a" else BOB
    return txs.make("channel_settle", CHAIN, channel=channel, party=party).signed_by(key)


def claim(channel: str, party: str, index: int, preimage: bytes, nonce: str = "") -> txs.Tx:
    key = ALICE if party == "a" else BOB
    body = dict(channel=channel, party=party, htlc=index, preimage=preimage.hex())
    return txs.make("channel_htlc_claim", CHAIN, nonce=nonce or f"claim-{index}", **body).signed_by(
        key
    )


def refund(channel: str, party: str, index: int) -> txs.Tx:
    key = ALICE if party == "a" else BOB
    body = dict(channel=channel, party=party, htlc=index)
    return txs.make("channel_htlc_refund", CHAIN, nonce=f"refund-{index}", **body).signed_by(key)


def paid(ledger: LedgerState) -> dict[str, int]:
    """What each party got back from the channel so far."""
    return {
        "a": ledger.balances[ALICE.pubkey] - (DEPOSIT - FUND_A),
        "b": ledger.balances[BOB.pubkey] - (DEPOSIT - FUND_B),
    }
