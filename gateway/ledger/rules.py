"""Applying one transaction to the ledger state: every check first, then the change (pure).

`apply(state, tx, height)` either raises TxRejected and leaves `state` untouched, or changes it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gateway.ledger import auction, canonical, htlc_outputs, keys, txs
from gateway.ledger.errors import TxRejected
from gateway.ledger.state import Channel, LedgerState, Meter, Participant
from gateway.ledger.txs import Tx

OPERATOR_KINDS = (
    "enroll_participant",
    "enroll_meter",
    "deposit",
    "market_result",
    *auction.OPERATOR_KINDS,
)
_OPERATOR_KINDS = frozenset(OPERATOR_KINDS)
# kinds that publish a commitment state: signed by the state's holder
_STATE_KINDS = frozenset({"channel_force_close", "channel_supersede"})


def _channel(state: LedgerState, body: dict[str, Any], tx_id: str) -> Channel:
    channel = state.channels.get(body["channel"])
    if channel is None:
        raise TxRejected("unknown_channel", body["channel"], tx_id)
    return channel


def required_signers(state: LedgerState, tx: Tx) -> list[str]:
    body = tx.body
    kind = body.get("kind")
    if kind in _OPERATOR_KINDS:
        return [state.operator]
    if kind == "withdraw":
        return [body["account"]]
    if kind in auction.SIGNER_FIELD:
        return [body[auction.SIGNER_FIELD[kind]]]
    if kind == "anchor":
        return [body["submitter"]]
    if kind == "channel_fund":
        return [body["a"], body["b"]]
    channel = _channel(state, body, tx.id)
    if kind == "channel_close":
        return [channel.a, channel.b]
    if kind in _STATE_KINDS:
        holder = body["state"].get("holder")
        if holder not in (channel.a, channel.b):
            raise TxRejected("bad_state", "state holder is not a channel party", tx.id)
        return [holder]
    return [channel.a if body["party"] == "a" else channel.b]


def check_signature_values(tx: Tx) -> None:
    """Every signature in `tx.sigs` is valid for its pubkey over the tx id (stateless).

    Which signers a tx needs depends on the state (check_signatures); a tx carrying a signature
    that does not verify is refused whoever signed it, so this part can run before ordering.
    """
    digest = bytes.fromhex(tx.id)
    for signer, sig in tx.sigs.items():
        if not keys.verify_digest(signer, digest, sig):
            raise TxRejected("bad_signature", f"signature of {signer[:16]}...", tx.id)


def check_signatures(state: LedgerState, tx: Tx, verify: bool = True) -> None:
    """The signer rules against the state; `verify=False` when check_signature_values passed."""
    signers = required_signers(state, tx)
    tx_id = tx.id
    sigs = tx.sigs
    if tx.body.get("kind") in _OPERATOR_KINDS and state.operator not in sigs:
        raise TxRejected("not_operator", "only the operator may submit this kind", tx_id)
    for signer in signers:
        if signer not in sigs:
            raise TxRejected("missing_signature", f"needs a signature by {signer[:16]}...", tx_id)
    extra = set(sigs) - set(signers) if len(sigs) > 1 or len(signers) > 1 else ()
    if extra:
        raise TxRejected("unexpected_signer", f"{sorted(extra)[0][:16]}... is not a signer", tx_id)
    digest = bytes.fromhex(tx_id)
    for signer in signers if verify else ():
        if not keys.verify_digest(signer, digest, tx.sigs[signer]):
            raise TxRejected("bad_signature", f"signature of {signer[:16]}...", tx_id)
    for signer in signers:
        if signer not in state.participants:
            raise TxRejected("unknown_signer", f"{signer[:16]}... is not enrolled", tx_id)


def _need_funds(state: LedgerState, account: str, amount: int, tx_id: str) -> None:
    if state.balances.get(account, 0) < amount:
        raise TxRejected(
            "insufficient_funds", f"{account[:16]}... holds {state.balances.get(account, 0)}", tx_id
        )


def _check_state(state: LedgerState, channel: Channel, tx: Tx) -> dict[str, Any]:
    pub = tx.body["state"]
    ok = (
        set(pub) == set(txs.STATE_FIELDS)
        and pub["kind"] == "commitment_state"
        and pub["chain"] == state.chain
        and pub["channel"] == channel.id
        and type(pub["number"]) is int
        and 0 <= pub["number"] < 2**48
        and type(pub["balance_a_msat"]) is int
        and type(pub["balance_b_msat"]) is int
        and pub["balance_a_msat"] >= 0
        and pub["balance_b_msat"] >= 0
        and keys.is_hex(pub["revocation_hash"], 32)
    )
    if not ok:
        raise TxRejected("bad_state", "commitment state malformed", tx.id)
    in_htlcs = htlc_outputs.check_state_htlcs(pub["htlcs"], tx.id)
    if pub["balance_a_msat"] + pub["balance_b_msat"] + in_htlcs != channel.capacity:
        raise TxRejected("bad_state", "balances and HTLC outputs do not sum to capacity", tx.id)
    counterparty = channel.b if pub["holder"] == channel.a else channel.a
    if not keys.verify_digest(counterparty, canonical.digest(pub), tx.body["state_sig"]):
        raise TxRejected("bad_state", "state_sig is not the counterparty's signature", tx.id)
    return dict(pub)


def apply(
    state: LedgerState,
    tx: Tx,
    height: int,
    check_sigs: bool = True,
    verify_sigs: bool = True,
    shape_checked: bool = False,
) -> None:
    """Validate `tx` for the block at `height` and apply it; raises TxRejected (state unchanged).

    `check_sigs=False` only when replaying blocks this node already verified and stored itself;
    `verify_sigs=False` when `check_signature_values(tx)` already passed (signer rules still run);
    `shape_checked=True` when `txs.check_shape(tx, state.chain)` already passed.
    """
    if not shape_checked:
        txs.check_shape(tx, state.chain)
    tx_id = tx.id
    if tx_id in state.tx_ids:
        raise TxRejected("replay", "transaction already in the chain", tx_id)
    if check_sigs:
        check_signatures(state, tx, verify=verify_sigs)
    _APPLY[tx.kind](state, tx.body, tx_id, height)
    state.tx_ids.add(tx_id)


def _enroll_participant(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    if body["participant"] in state.participants:
        raise TxRejected("already_enrolled", body["participant"], tx_id)
    state.participants[body["participant"]] = Participant(body["name"], body["role"])
    state.balances[body["participant"]] = 0


def _enroll_meter(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    mid = keys.meter_id(body["meter"])
    if mid in state.meters:
        raise TxRejected("already_enrolled", f"meter {mid}", tx_id)
    if body["owner"] not in state.participants:
        raise TxRejected("unknown_account", "meter owner is not enrolled", tx_id)
    state.meters[mid] = Meter(body["meter"], body["owner"])


def _deposit(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    if body["account"] not in state.participants:
        raise TxRejected("unknown_account", body["account"], tx_id)
    # all money on the ledger (balances and channels) is deposits minus withdrawals: bounding it
    # keeps every balance and every channel capacity within a signed 64-bit integer
    in_circulation = state.deposited - state.withdrawn
    if in_circulation + body["amount_msat"] > txs.MAX_AMOUNT:
        raise TxRejected(
            "amount_overflow",
            f"the ledger would hold more than {txs.MAX_AMOUNT} msat ({in_circulation} now)",
            tx_id,
        )
    state.balances[body["account"]] += body["amount_msat"]
    state.deposited += body["amount_msat"]


def _withdraw(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    _need_funds(state, body["account"], body["amount_msat"], tx_id)
    state.balances[body["account"]] -= body["amount_msat"]
    state.withdrawn += body["amount_msat"]


def _channel_fund(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    a, b, amount_a, amount_b = body["a"], body["b"], body["amount_a_msat"], body["amount_b_msat"]
    if a == b or amount_a + amount_b < 1:
        raise TxRejected("malformed", "a channel needs two parties and a capacity >= 1", tx_id)
    _need_funds(state, a, amount_a, tx_id)
    _need_funds(state, b, amount_b, tx_id)
    state.balances[a] -= amount_a
    state.balances[b] -= amount_b
    state.channels[tx_id] = Channel(
        tx_id, a, b, amount_a + amount_b, body["dispute_blocks"], fund_height=height
    )


def _require(channel: Channel, status: str, tx_id: str) -> None:
    if channel.status != status:
        raise TxRejected(f"channel_not_{status}", f"channel is {channel.status}", tx_id)


def _channel_close(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    channel = _channel(state, body, tx_id)
    _require(channel, "open", tx_id)
    if body["balance_a_msat"] + body["balance_b_msat"] != channel.capacity:
        raise TxRejected("malformed", "final balances must sum to the capacity", tx_id)
    state.balances[channel.a] += body["balance_a_msat"]
    state.balances[channel.b] += body["balance_b_msat"]
    channel.status, channel.close_height = "closed", height


def _channel_force_close(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    channel = _channel(state, body, tx_id)
    _require(channel, "open", tx_id)
    published = _check_state(state, channel, Tx(body))
    channel.status, channel.close_height = "closing", height
    channel.publish(published)
    htlc_outputs.open_outputs(channel, published)


def _window_end(channel: Channel) -> int:
    assert channel.close_height is not None
    return channel.close_height + channel.dispute_blocks


def _channel_supersede(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    """A later state replaces the published one while the dispute window runs; the window
    restarts, so the other party can still penalize or supersede it in turn."""
    channel = _channel(state, body, tx_id)
    _require(channel, "closing", tx_id)
    assert channel.state is not None
    if height > _window_end(channel):
        raise TxRejected(
            "dispute_window_closed", f"window ended at block {_window_end(channel)}", tx_id
        )
    published = _check_state(state, channel, Tx(body))
    if published["number"] <= channel.state["number"]:
        raise TxRejected(
            "stale_state",
            f"state {published['number']} is not above the published {channel.state['number']}",
            tx_id,
        )
    htlc_outputs.reopen_outputs(channel, published)
    channel.close_height = height
    channel.publish(published)


def _channel_penalty(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    """The secret of ANY state published in this close by the other party (its force close or a
    supersede, not only the one published now) takes the whole capacity: a cheater who publishes
    a revoked state and then supersedes it with its latest still loses the channel."""
    channel = _channel(state, body, tx_id)
    _require(channel, "closing", tx_id)
    claimant = channel.a if body["party"] == "a" else channel.b
    if height > _window_end(channel):
        raise TxRejected(
            "dispute_window_closed", f"window ended at block {_window_end(channel)}", tx_id
        )
    secret_hash = hashlib.sha256(bytes.fromhex(body["secret"])).hexdigest()
    holders = {p["holder"] for p in channel.published if p["revocation_hash"] == secret_hash}
    if not holders:
        raise TxRejected(
            "bad_secret", "sha256(secret) is no published state's revocation_hash", tx_id
        )
    if holders == {claimant}:
        raise TxRejected(
            "not_channel_party", "a party cannot claim a penalty on a state it published", tx_id
        )
    state.balances[claimant] += channel.capacity  # HTLC outputs included: none was paid yet
    channel.status = "penalized"
    for out in channel.htlcs:
        out["outcome"] = "penalized"


def _channel_settle(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    channel = _channel(state, body, tx_id)
    _require(channel, "closing", tx_id)
    assert channel.state is not None
    if height <= _window_end(channel):
        raise TxRejected(
            "dispute_window_open", f"window ends at block {_window_end(channel)}", tx_id
        )
    htlc_outputs.settle(state, channel, height)


def _channel_htlc_claim(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    htlc_outputs.claim(state, _channel(state, body, tx_id), body, tx_id, height)


def _channel_htlc_refund(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    htlc_outputs.refund(state, _channel(state, body, tx_id), body, tx_id, height)


def _anchor(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    if body["meter_first"] > body["meter_last"] or body["seq_first"] > body["seq_last"]:
        raise TxRejected("malformed", "ranges must have first <= last", tx_id)
    for mid in (body["meter_first"], body["meter_last"]):
        if mid not in state.meters:
            raise TxRejected("unknown_meter", mid, tx_id)
    if body["merkle_root"] in state.anchors:
        raise TxRejected("duplicate_anchor", body["merkle_root"], tx_id)
    state.anchors[body["merkle_root"]] = tx_id


def _market_result(state: LedgerState, body: dict[str, Any], tx_id: str, height: int) -> None:
    if body["market_id"] in state.markets:
        raise TxRejected("duplicate_market", body["market_id"], tx_id)
    state.markets[body["market_id"]] = {"height": height, "tx_id": tx_id, **body}


_APPLY = {
    "enroll_participant": _enroll_participant,
    "enroll_meter": _enroll_meter,
    "deposit": _deposit,
    "withdraw": _withdraw,
    "channel_fund": _channel_fund,
    "channel_close": _channel_close,
    "channel_force_close": _channel_force_close,
    "channel_supersede": _channel_supersede,
    "channel_penalty": _channel_penalty,
    "channel_settle": _channel_settle,
    "channel_htlc_claim": _channel_htlc_claim,
    "channel_htlc_refund": _channel_htlc_refund,
    "anchor": _anchor,
    "market_result": _market_result,
    **auction.APPLY,
}
assert set(_APPLY) == set(txs.KINDS)
