"""The ledger transactions a channel signs, built as plain dicts (docs/ledger-api.md).

Bodies are hashed and signed in the ledger's canonical JSON (`gateway.ledger.canonical`, the one
module that defines it). Pure: no I/O. A published state carries its in-flight HTLCs as HTLC outputs: the
receiver takes one with the preimage up to its expiry, the offerer takes it back after that
(docs/ledger-api.md §3).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from gateway.ledger.canonical import digest, encode
from gateway.ln.channel.commitment import Commitment, Htlc

__all__ = [
    "DISPUTE_BLOCKS",
    "close_body",
    "digest",
    "force_close_body",
    "funding_body",
    "htlc_claim_body",
    "htlc_refund_body",
    "ledger_state",
    "ledger_state_digest",
    "penalty_body",
    "settle_body",
]

DISPUTE_BLOCKS = 6


def funding_body(
    chain: str,
    a: bytes,
    b: bytes,
    amounts: tuple[int, int],
    nonce: str,
    dispute_blocks: int = DISPUTE_BLOCKS,
) -> dict[str, Any]:
    """The ``channel_fund`` body; its digest is the channel id."""
    return {
        "kind": "channel_fund",
        "chain": chain,
        "nonce": nonce,
        "a": a.hex(),
        "b": b.hex(),
        "amount_a_msat": amounts[0],
        "amount_b_msat": amounts[1],
        "dispute_blocks": dispute_blocks,
    }


def close_body(chain: str, channel_id: bytes, balances: tuple[int, int]) -> dict[str, Any]:
    return {
        "kind": "channel_close",
        "chain": chain,
        "nonce": "close",
        "channel": channel_id.hex(),
        "balance_a_msat": balances[0],
        "balance_b_msat": balances[1],
    }


def ledger_state(chain: str, c: Commitment, holder: int, node_ids: tuple[bytes, bytes]) -> dict:
    """The commitment state ``holder`` may publish (docs/ledger-api.md §3): both balances and
    one HTLC output per in-flight HTLC, in the commitment's (offerer, id) order."""
    return {**_state_head(chain, c, holder, node_ids), "htlcs": [_htlc_output(h) for h in c.htlcs]}


def ledger_state_digest(
    chain: str, c: Commitment, holder: int, node_ids: tuple[bytes, bytes]
) -> bytes:
    """`digest(ledger_state(...))`, each HTLC output's canonical JSON encoded once: a state
    lists every in-flight HTLC and consecutive states share most of them. The outputs are
    spliced into the canonical encoding of the state with an empty list; that key's `"htlcs":[`
    is structural (a quote inside a JSON string is always escaped)."""
    text = encode({**_state_head(chain, c, holder, node_ids), "htlcs": []})
    at = text.index(_EMPTY_HTLCS) + len(_EMPTY_HTLCS) - 1
    outputs = b",".join([_htlc_json(h) for h in c.htlcs])
    return hashlib.sha256(text[:at] + outputs + text[at:]).digest()


_EMPTY_HTLCS = b'"htlcs":[]'


def _state_head(
    chain: str, c: Commitment, holder: int, node_ids: tuple[bytes, bytes]
) -> dict[str, Any]:
    return {
        "kind": "commitment_state",
        "chain": chain,
        "channel": c.channel_id.hex(),
        "number": c.number,
        "balance_a_msat": c.balances[0],
        "balance_b_msat": c.balances[1],
        "holder": node_ids[holder].hex(),
        "revocation_hash": c.rev_hashes[holder].hex(),
    }


def _htlc_output(h: Htlc) -> dict[str, Any]:
    return {
        "offerer": "ab"[h.offerer],
        "id": h.htlc_id,
        "amount_msat": h.amount_msat,
        "payment_hash": h.payment_hash.hex(),
        "cltv_expiry": h.cltv_expiry,
    }


@functools.lru_cache(maxsize=16384)
def _htlc_json(h: Htlc) -> bytes:
    return encode(_htlc_output(h))


def force_close_body(chain: str, state: dict[str, Any], state_sig: bytes) -> dict[str, Any]:
    return {
        "kind": "channel_force_close",
        "chain": chain,
        "nonce": f"force-{state['number']}",
        "channel": state["channel"],
        "state": state,
        "state_sig": state_sig.hex(),
    }


def penalty_body(chain: str, channel_id: bytes, party: str, secret: bytes) -> dict[str, Any]:
    return {
        "kind": "channel_penalty",
        "chain": chain,
        "nonce": "penalty",
        "channel": channel_id.hex(),
        "party": party,
        "secret": secret.hex(),
    }


def settle_body(chain: str, channel_id: bytes, party: str) -> dict[str, Any]:
    return {
        "kind": "channel_settle",
        "chain": chain,
        "nonce": "settle",
        "channel": channel_id.hex(),
        "party": party,
    }


def htlc_claim_body(
    chain: str, channel_id: bytes, party: str, index: int, preimage: bytes
) -> dict[str, Any]:
    """Take HTLC output ``index`` of the published state with its preimage (its receiver)."""
    return {
        "kind": "channel_htlc_claim",
        "chain": chain,
        "nonce": f"claim-{index}",
        "channel": channel_id.hex(),
        "party": party,
        "htlc": index,
        "preimage": preimage.hex(),
    }


def htlc_refund_body(chain: str, channel_id: bytes, party: str, index: int) -> dict[str, Any]:
    """Take HTLC output ``index`` back after its expiry (its offerer)."""
    return {
        "kind": "channel_htlc_refund",
        "chain": chain,
        "nonce": f"refund-{index}",
        "channel": channel_id.hex(),
        "party": party,
        "htlc": index,
    }
