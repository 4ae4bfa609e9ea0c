"""Transaction bodies: their shapes, ids, signing and building (pure; spec in docs/ledger-api.md §2)."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from gateway.ledger import auction, canonical, keys
from gateway.ledger.errors import TxRejected

ROLES = ("prosumer", "consumer", "producer", "storage", "pod", "aggregator", "gateway", "market")
MAX_AMOUNT = 2**63 - 1
MAX_DISPUTE_BLOCKS = 10_000
MAX_STATE_HTLCS = 4000  # HTLC outputs in one commitment state (gateway.ln's in-flight limit)


def _amount(v: Any) -> bool:
    return type(v) is int and 1 <= v <= MAX_AMOUNT


def _amount0(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_AMOUNT


def _u32(v: Any) -> bool:
    return type(v) is int and 0 <= v < 2**32


def _text(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and lo <= len(v) <= hi and v.isprintable()


def _hex(n: int) -> Callable[[Any], bool]:
    return lambda v: keys.is_hex(v, n)


def _party(v: Any) -> bool:
    return v in ("a", "b")


_ID = _hex(32)
SCHEMAS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "enroll_participant": {
        "participant": keys.is_pubkey,
        "name": _text(1, 64),
        "role": lambda v: v in ROLES,
    },
    "enroll_meter": {"meter": keys.is_pubkey, "owner": keys.is_pubkey},
    "deposit": {"account": keys.is_pubkey, "amount_msat": _amount, "reference": _text(0, 128)},
    "withdraw": {"account": keys.is_pubkey, "amount_msat": _amount},
    "channel_fund": {
        "a": keys.is_pubkey,
        "b": keys.is_pubkey,
        "amount_a_msat": _amount0,
        "amount_b_msat": _amount0,
        "dispute_blocks": lambda v: type(v) is int and 1 <= v <= MAX_DISPUTE_BLOCKS,
    },
    "channel_close": {"channel": _ID, "balance_a_msat": _amount0, "balance_b_msat": _amount0},
    "channel_force_close": {
        "channel": _ID,
        "state": lambda v: isinstance(v, dict),
        "state_sig": lambda v: isinstance(v, str),
    },
    # a later state of a closing channel, checked as a force close's state (docs/ledger-api.md §3)
    "channel_supersede": {
        "channel": _ID,
        "state": lambda v: isinstance(v, dict),
        "state_sig": lambda v: isinstance(v, str),
    },
    "channel_penalty": {"channel": _ID, "party": _party, "secret": _hex(32)},
    "channel_settle": {"channel": _ID, "party": _party},
    "channel_htlc_claim": {
        "channel": _ID,
        "party": _party,
        "htlc": lambda v: type(v) is int and 0 <= v < MAX_STATE_HTLCS,
        "preimage": _hex(32),
    },
    "channel_htlc_refund": {
        "channel": _ID,
        "party": _party,
        "htlc": lambda v: type(v) is int and 0 <= v < MAX_STATE_HTLCS,
    },
    "anchor": {
        "submitter": keys.is_pubkey,
        "merkle_root": _ID,
        "count": lambda v: type(v) is int and 1 <= v < 2**32,
        "meter_first": _hex(16),
        "meter_last": _hex(16),
        "seq_first": _u32,
        "seq_last": _u32,
        "batch": _text(0, 64),
    },
    "market_result": {
        "market_id": _text(1, 64),
        "trades_hash": _ID,
        "trade_count": lambda v: _u32(v),
        "clearing_price_msat_per_kwh": _amount0,
    },
    **auction.SCHEMAS,
}
KINDS = tuple(SCHEMAS)
_FIELDS = {kind: frozenset({"kind", "chain", "nonce", *schema}) for kind, schema in SCHEMAS.items()}
STATE_FIELDS = (
    "kind",
    "chain",
    "channel",
    "number",
    "balance_a_msat",
    "balance_b_msat",
    "holder",
    "revocation_hash",
    "htlcs",
)
HTLC_FIELDS = ("offerer", "id", "amount_msat", "payment_hash", "cltv_expiry")


T = TypeVar("T")


class _computed_once(Generic[T]):
    """`functools.cached_property` without its lock (Python 3.11 takes an RLock on every first
    access: a third of a small tx's decoding). Two threads computing the same pure value at
    once both store the same result."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, cls: type) -> _computed_once[T]: ...

    @overload
    def __get__(self, obj: object, cls: type | None = None) -> T: ...

    def __get__(self, obj: object, cls: type | None = None) -> T | _computed_once[T]:
        if obj is None:
            return self
        value = self.func(obj)
        obj.__dict__[self.name] = value
        return value


@dataclass(frozen=True)
class Tx:
    """A signed transaction: `body` plus signatures by pubkey. `id` is sha256 of the canonical body.

    The id is computed once (a Tx is immutable: build a new one rather than editing `body`).
    """

    body: dict[str, Any]
    sigs: dict[str, str] = field(default_factory=dict)

    @_computed_once
    def canonical_body(self) -> bytes:
        """The canonical bytes of `body` (raises TxRejected("malformed") if it has none)."""
        return canonical.encode(self.body)

    @_computed_once
    def id(self) -> str:
        return hashlib.sha256(self.canonical_body).hexdigest()

    @_computed_once
    def wire_json(self) -> str:
        """`to_json()` in canonical JSON (sorted keys, no spaces): how blocks and logs store it.

        Built from the canonical body already encoded for the id, so no second encoding.
        """
        sigs = canonical.encode_checked(self.sigs)  # str -> str (from_json, signed_by)
        return f'{{"body":{self.canonical_body.decode()},"sigs":{sigs}}}'

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    def to_json(self) -> dict[str, Any]:
        return {"body": self.body, "sigs": dict(sorted(self.sigs.items()))}

    def signed_by(self, *signers: keys.SigningKey) -> Tx:
        digest = canonical.digest(self.body)
        sigs = dict(self.sigs)
        for key in signers:
            sigs[key.pubkey] = key.sign_digest(digest)
        return Tx(self.body, sigs)


def from_json(value: Any) -> Tx:
    """Parse the wire form `{"body": {...}, "sigs": {...}}`; raises TxRejected("malformed")."""
    if not isinstance(value, dict) or set(value) != {"body", "sigs"}:
        raise TxRejected("malformed", "a transaction is {body, sigs}")
    body, sigs = value["body"], value["sigs"]
    if not isinstance(body, dict) or not isinstance(sigs, dict):
        raise TxRejected("malformed", "body and sigs must be objects")
    if not all(isinstance(k, str) and isinstance(s, str) for k, s in sigs.items()):
        raise TxRejected("malformed", "sigs maps pubkey hex to signature hex")
    return Tx(body, sigs)


def check_shape(tx: Tx, chain: str) -> None:
    """Stateless checks: kind, exact field set, field types and ranges, chain id."""
    body = tx.body
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise TxRejected("malformed", f"unknown kind {kind!r}", tx_id=None)
    tx_id = tx.id  # also proves the body encodes canonically
    schema = SCHEMAS[str(kind)]
    expected = _FIELDS[kind]
    if body.keys() != expected:
        extra, missing = set(body) - expected, expected - set(body)
        raise TxRejected(
            "malformed", f"fields: missing {sorted(missing)} extra {sorted(extra)}", tx_id
        )
    nonce = body["nonce"]
    if not (type(nonce) is int or (isinstance(nonce, str) and len(nonce) <= 64)):
        raise TxRejected("malformed", "nonce must be an int or a string <= 64 chars", tx_id)
    for name, ok in schema.items():
        if not ok(body[name]):
            raise TxRejected("malformed", f"bad value for {name!r}", tx_id)
    if body["chain"] != chain:
        raise TxRejected(
            "wrong_chain", f"chain {str(body['chain'])[:16]}... is not this ledger", tx_id
        )


_nonces = itertools.count()


def make(kind: str, chain: str, nonce: int | str | None = None, **fields: Any) -> Tx:
    """An unsigned transaction; the default nonce is unique within this process and time."""
    if nonce is None:
        nonce = time.time_ns() + next(_nonces)
    return Tx({"kind": kind, "chain": chain, "nonce": nonce, **fields})


def commitment_state(
    chain: str,
    channel: str,
    number: int,
    balance_a_msat: int,
    balance_b_msat: int,
    holder: str,
    revocation_hash: str,
    htlcs: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A commitment state (docs/ledger-api.md §3); the counterparty signs `state_digest` of it.

    `htlcs` are its HTLC outputs (`state_htlc`), sorted by (offerer, id)."""
    return {
        "kind": "commitment_state",
        "chain": chain,
        "channel": channel,
        "number": number,
        "balance_a_msat": balance_a_msat,
        "balance_b_msat": balance_b_msat,
        "holder": holder,
        "revocation_hash": revocation_hash,
        "htlcs": list(htlcs),
    }


def state_htlc(
    offerer: str, htlc_id: int, amount_msat: int, payment_hash: str, cltv_expiry: int
) -> dict[str, Any]:
    """One HTLC output of a commitment state: `offerer` ("a" or "b") pays `amount_msat` to the
    other party against the preimage of `payment_hash` up to block `cltv_expiry`, or takes it
    back after that block."""
    return {
        "offerer": offerer,
        "id": htlc_id,
        "amount_msat": amount_msat,
        "payment_hash": payment_hash,
        "cltv_expiry": cltv_expiry,
    }


def state_digest(state: dict[str, Any]) -> bytes:
    return canonical.digest(state)


def sign_state(state: dict[str, Any], key: keys.SigningKey) -> str:
    return key.sign_digest(state_digest(state))
