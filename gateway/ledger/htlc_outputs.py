"""HTLC outputs of a force-closed channel: shape checks, claims, refunds and the payout (pure).

A published commitment state lists its in-flight HTLCs (docs/ledger-api.md §3). While the
dispute window runs nothing is paid: the receiver of an HTLC may record its preimage
(`channel_htlc_claim`, up to the HTLC's `cltv_expiry`), and a penalty still takes the whole
capacity. `channel_settle` pays the balances, every fulfilled HTLC to its receiver and every
expired one back to its offerer; HTLCs not yet expired stay pending (channel `settled`) until
claimed (paid at once) or refunded (`channel_htlc_refund`, after the expiry). A
`channel_supersede` re-opens the outputs from its later state, keeping the claims of outputs it
holds unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gateway.ledger import keys, txs
from gateway.ledger.errors import TxRejected
from gateway.ledger.state import Channel, LedgerState


def _htlc_ok(h: Any) -> bool:
    return (
        isinstance(h, dict)
        and set(h) == set(txs.HTLC_FIELDS)
        and h["offerer"] in ("a", "b")
        and type(h["id"]) is int
        and 0 <= h["id"] < 2**64
        and type(h["amount_msat"]) is int
        and 1 <= h["amount_msat"] <= txs.MAX_AMOUNT
        and keys.is_hex(h["payment_hash"], 32)
        and type(h["cltv_expiry"]) is int
        and 0 <= h["cltv_expiry"] < 2**32
    )


def check_state_htlcs(htlcs: Any, tx_id: str) -> int:
    """Validate a state's HTLC list; returns their total amount. Raises TxRejected("bad_state")."""
    if not isinstance(htlcs, list) or len(htlcs) > txs.MAX_STATE_HTLCS:
        raise TxRejected("bad_state", f"htlcs must be a list of <= {txs.MAX_STATE_HTLCS}", tx_id)
    if not all(_htlc_ok(h) for h in htlcs):
        raise TxRejected("bad_state", "an HTLC output is malformed", tx_id)
    order = [(h["offerer"], h["id"]) for h in htlcs]
    if order != sorted(set(order)):
        raise TxRejected("bad_state", "HTLC outputs must be sorted by (offerer, id), unique", tx_id)
    return sum(h["amount_msat"] for h in htlcs)


def open_outputs(channel: Channel, state: dict[str, Any]) -> None:
    channel.htlcs = [dict(h, outcome="pending", preimage="") for h in state["htlcs"]]


def _identity(h: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(h[name] for name in txs.HTLC_FIELDS)


def reopen_outputs(channel: Channel, state: dict[str, Any]) -> None:
    """The outputs of a superseding state: pending, except that a claim recorded for an output
    that the new state holds identically (offerer, id, amount, payment hash, expiry) stands."""
    claimed = {_identity(h): h["preimage"] for h in channel.htlcs if h["outcome"] == "fulfilled"}
    channel.htlcs = [
        dict(h, outcome="fulfilled", preimage=claimed[_identity(h)])
        if _identity(h) in claimed
        else dict(h, outcome="pending", preimage="")
        for h in state["htlcs"]
    ]


def _party_key(channel: Channel, party: str) -> str:
    return channel.a if party == "a" else channel.b


def _output(channel: Channel, body: dict[str, Any], tx_id: str) -> dict[str, Any]:
    if channel.status not in ("closing", "settled"):
        raise TxRejected("channel_not_closing", f"channel is {channel.status}", tx_id)
    if body["htlc"] >= len(channel.htlcs):
        raise TxRejected("unknown_htlc", f"the published state has {len(channel.htlcs)}", tx_id)
    out = channel.htlcs[body["htlc"]]
    if out["outcome"] != "pending":
        raise TxRejected("htlc_resolved", f"HTLC output is already {out['outcome']}", tx_id)
    return out


def _finish(channel: Channel) -> None:
    if channel.status == "settled" and channel.pending_htlc_msat() == 0:
        channel.status = "closed"


def claim(
    state: LedgerState, channel: Channel, body: dict[str, Any], tx_id: str, height: int
) -> None:
    out = _output(channel, body, tx_id)
    if out["offerer"] == body["party"]:
        raise TxRejected("wrong_party", "only the HTLC's receiver claims it", tx_id)
    if height > out["cltv_expiry"]:
        raise TxRejected("htlc_expired", f"the HTLC expired at block {out['cltv_expiry']}", tx_id)
    if hashlib.sha256(bytes.fromhex(body["preimage"])).hexdigest() != out["payment_hash"]:
        raise TxRejected("bad_preimage", "sha256(preimage) != payment_hash", tx_id)
    out["outcome"], out["preimage"] = "fulfilled", body["preimage"]
    if channel.status == "settled":
        state.balances[_party_key(channel, body["party"])] += out["amount_msat"]
        _finish(channel)


def refund(
    state: LedgerState, channel: Channel, body: dict[str, Any], tx_id: str, height: int
) -> None:
    out = _output(channel, body, tx_id)
    if channel.status == "closing":
        raise TxRejected("dispute_window_open", "refunds are paid once the channel settles", tx_id)
    if out["offerer"] != body["party"]:
        raise TxRejected("wrong_party", "only the HTLC's offerer takes it back", tx_id)
    if height <= out["cltv_expiry"]:
        raise TxRejected(
            "htlc_not_expired", f"the HTLC expires at block {out['cltv_expiry']}", tx_id
        )
    out["outcome"] = "refunded"
    state.balances[_party_key(channel, out["offerer"])] += out["amount_msat"]
    _finish(channel)


def settle(state: LedgerState, channel: Channel, height: int) -> None:
    """Pay the published balances and every resolved (or, by now, expired) HTLC output."""
    assert channel.state is not None
    state.balances[channel.a] += channel.state["balance_a_msat"]
    state.balances[channel.b] += channel.state["balance_b_msat"]
    for out in channel.htlcs:
        if out["outcome"] == "pending" and height > out["cltv_expiry"]:
            out["outcome"] = "refunded"
            state.balances[_party_key(channel, out["offerer"])] += out["amount_msat"]
        elif out["outcome"] == "fulfilled":
            receiver = "b" if out["offerer"] == "a" else "a"
            state.balances[_party_key(channel, receiver)] += out["amount_msat"]
    channel.status = "settled"
    _finish(channel)
