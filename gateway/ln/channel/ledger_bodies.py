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
    "supersede_body",
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
    """`digest(ledger_state(...))`, built without the generic encoder: every round signs and
    checks two states, and consecutive states share all but their numbers, balances and HTLCs.

    The canonical JSON of a state is its keys in sorted order; the strings that do not change in
    a channel (chain, channel id, holder) are encoded once (`_state_frame`), each HTLC output
    once (`_htlc_json`), and the numbers are written as JSON integers. Values the canonical
    encoder refuses (an integer outside 64 bits) go through it, so they are refused the same way.
    """
    b0, b1, number = c.balances[0], c.balances[1], c.number
    if not (0 <= b0 < _INT_MAX and 0 <= b1 < _INT_MAX and 0 <= number < _INT_MAX):
        return digest(ledger_state(chain, c, holder, node_ids))
    frame = _state_frame(chain, c.channel_id, node_ids[holder])
    return hashlib.sha256(
        b'{"balance_a_msat":%d,"balance_b_msat":%d,%s%s],"kind":"commitment_state","number":%d,'
        b'"revocation_hash":"%s"}'
        % (b0, b1, frame, _htlcs_json(c), number, c.rev_hashes[holder].hex().encode())
    ).digest()


def _htlcs_json(c: Commitment) -> bytes:
    """The HTLC outputs of `c`'s states, joined once per commitment: each party digests both
    states of a commitment (it signs the peer's and checks its own), and they list the same
    outputs."""
    enc: bytes | None = c.__dict__.get("_ledger_htlcs")
    if enc is None:
        enc = b",".join([h.__dict__.get("_ledger_json") or _htlc_json(h) for h in c.htlcs])
        object.__setattr__(c, "_ledger_htlcs", enc)
    return enc


_INT_MAX = 2**63  # the canonical encoder's integer range (gateway.ledger.canonical)


@functools.lru_cache(maxsize=1024)
def _state_frame(chain: str, channel_id: bytes, holder: bytes) -> bytes:
    """The canonical bytes of a state between its balances and its HTLC outputs, checked once
    against the generic encoder (`"chain":...,"channel":...,"holder":...,"htlcs":[`)."""
    probe = {
        "kind": "commitment_state",
        "chain": chain,
        "channel": channel_id.hex(),
        "number": 0,
        "balance_a_msat": 0,
        "balance_b_msat": 0,
        "holder": holder.hex(),
        "revocation_hash": "",
        "htlcs": [],
    }
    text = encode(probe)
    start = text.index(b'"chain":')
    end = text.index(_EMPTY_HTLCS) + len(_EMPTY_HTLCS) - 1
    frame = text[start:end]
    assert text == b'{"balance_a_msat":0,"balance_b_msat":0,' + frame + (
        b'],"kind":"commitment_state","number":0,"revocation_hash":""}'
    ), "canonical key order changed"
    return frame


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


def _htlc_json(h: Htlc) -> bytes:
    """The canonical JSON of an HTLC output, kept on the (immutable) HTLC itself: a state
    digest lists every HTLC in flight, and each HTLC stays in many states."""
    enc: bytes | None = h.__dict__.get("_ledger_json")
    if enc is None:
        if (
            h.offerer in (0, 1)
            and 0 <= min(h.htlc_id, h.amount_msat, h.cltv_expiry)
            and (max(h.htlc_id, h.amount_msat, h.cltv_expiry) < _INT_MAX)
        ):  # the canonical bytes, formatted (keys in sorted order; checked by a property test)
            enc = (
                b'{"amount_msat":%d,"cltv_expiry":%d,"id":%d,"offerer":"%s","payment_hash":"%s"}'
                % (
                    h.amount_msat,
                    h.cltv_expiry,
                    h.htlc_id,
                    b"ab"[h.offerer : h.offerer + 1],
                    h.payment_hash.hex().encode(),
                )
            )
        else:  # what the canonical encoder refuses, it refuses here too
            enc = encode(_htlc_output(h))
        object.__setattr__(h, "_ledger_json", enc)
    return enc


def force_close_body(chain: str, state: dict[str, Any], state_sig: bytes) -> dict[str, Any]:
    return {
        "kind": "channel_force_close",
        "chain": chain,
        "nonce": f"force-{state['number']}",
        "channel": state["channel"],
        "state": state,
        "state_sig": state_sig.hex(),
    }


def supersede_body(chain: str, state: dict[str, Any], state_sig: bytes) -> dict[str, Any]:
    """Replace the published state of a closing channel by this later one (its number must be
    higher; the dispute window restarts): signed by ``state["holder"]``, like a force close."""
    return {
        "kind": "channel_supersede",
        "chain": chain,
        "nonce": f"supersede-{state['number']}",
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
    chain: str, channel_id: bytes, party: str, index: int, preimage: bytes, *, number: int
) -> dict[str, Any]:
    """Take HTLC output ``index`` of the published state, commitment ``number``, with its
    preimage (its receiver).

    The nonce names the state: a claim is identified by its body, and after a supersede output
    ``index`` of the new state may be another HTLC with the same payment hash as the one
    claimed at that index of the old state; the same body again would be a replay (refused,
    "duplicate" from the node) and the output would go back to its offerer. Numbers of the
    states a channel publishes strictly increase, so each state's claim is its own tx, and the
    same claim submitted again is idempotent (docs/ledger-api.md §3)."""
    return {
        "kind": "channel_htlc_claim",
        "chain": chain,
        "nonce": f"claim-{number}-{index}",
        "channel": channel_id.hex(),
        "party": party,
        "htlc": index,
        "preimage": preimage.hex(),
    }


def htlc_refund_body(chain: str, channel_id: bytes, party: str, index: int) -> dict[str, Any]:
    """Take HTLC output ``index`` back after its expiry (its offerer). Refunds are taken only
    once the channel is settled, when no supersede can change the outputs any more: the index
    names the output."""
    return {
        "kind": "channel_htlc_refund",
        "chain": chain,
        "nonce": f"refund-{index}",
        "channel": channel_id.hex(),
        "party": party,
        "htlc": index,
    }
