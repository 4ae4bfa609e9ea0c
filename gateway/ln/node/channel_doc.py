"""A channel's stored form: a small JSON document plus the large parts as blobs, each written once.

A channel holding a thousand HTLCs has commitments of ~53 kB and update batches of ~150 kB, and
the node commits several times per round. So the document names its commitments, batches and
queue by the SHA-256 of their bytes ("#" + hex: `channel_blobs` rows, content-addressed; a part
of at most INLINE_MAX bytes is inline hex instead, as in a channel with few HTLCs): a commitment is
written once when it is signed, however many commits of the round follow, and a proposal that
becomes `latest` is not written again. A blob no longer named by the document is deleted in the
same transaction (store.py). The funding body and signatures and a force close (`extra`,
EXTRA_BLOBS) are blobs too, written once: the document of a channel in a round stays within one
SQLite page. Version 1 documents (everything inline, hex) and version 2 (`extra` inline) still
load.

Pure: no I/O; the store hands in the blobs it holds.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from gateway.ln.channel.channel import Channel, ChannelState, Proposal
from gateway.ln.channel.commitment import Commitment, Htlc
from gateway.ln.channel.htlc import Update, decode_updates, encode_updates
from gateway.ln.codec import bolt3
from gateway.ln.errors import ChannelStoreError
from gateway.ln.node.keys import NodeKeys

VERSION = 3  # 3: `extra_blobs` (EXTRA_BLOBS parts of `extra` as blobs)
INLINE_MAX = 1024  # bytes: a part this small is kept in the document (no row of its own)
Blobs = dict[bytes, bytes]  # key (sha256 of the data) -> data
_HTLC_SIZE = 53


def _blob(data: bytes) -> tuple[bytes, bytes]:
    return hashlib.sha256(data).digest(), data


def commitment_blob(c: Commitment) -> tuple[bytes, bytes]:
    """(key, bytes) of a commitment, built once per (immutable) commitment."""
    got: tuple[bytes, bytes] | None = c.__dict__.get("_blob")
    if got is None:
        got = _blob(c.encode())
        object.__setattr__(c, "_blob", got)
    return got


_TUPLE_BLOBS: dict[tuple[int, int], tuple[tuple[Any, ...], tuple[bytes, bytes]]] = {}


def _tuple_blob(
    items: tuple[Any, ...], encode: Callable[[tuple[Any, ...]], bytes]
) -> tuple[bytes, bytes]:
    """(key, bytes) of a signed batch or an HTLC list (tuples, never changed), kept for the few
    a node is persisting: each is named by every commit until its round completes. Keyed by
    the encoder too: an empty batch and an empty HTLC list are the same `()`."""
    slot = (id(items), id(encode))
    hit = _TUPLE_BLOBS.get(slot)
    if hit is not None and hit[0] is items:
        return hit[1]
    got = _blob(encode(items))
    if len(_TUPLE_BLOBS) >= 64:
        _TUPLE_BLOBS.clear()
    _TUPLE_BLOBS[slot] = (items, got)
    return got


def _encode_htlcs(htlcs: tuple[Htlc, ...]) -> bytes:
    return b"".join(h.encode() for h in htlcs)


def _decode_htlcs(data: bytes) -> tuple[Htlc, ...]:
    if len(data) % _HTLC_SIZE:
        raise ChannelStoreError("stored HTLC list has the wrong length")
    return tuple(Htlc.decode(data[i : i + _HTLC_SIZE]) for i in range(0, len(data), _HTLC_SIZE))


def batch_blob(updates: tuple[Update, ...]) -> tuple[bytes, bytes]:
    return _tuple_blob(updates, encode_updates)


def channel_to_doc(ch: Channel, pending: tuple[bytes, bytes]) -> tuple[dict[str, Any], Blobs]:
    """The document and every blob it names. `pending`: the (key, bytes) of the queue, which
    the store keeps per channel (the queue is a list, changed in place)."""
    blobs: Blobs = {}

    def ref(kb: tuple[bytes, bytes]) -> str:
        if len(kb[1]) <= INLINE_MAX:
            return kb[1].hex()
        blobs[kb[0]] = kb[1]
        return "#" + kb[0].hex()

    p = ch.proposal
    doc = {
        "v": VERSION,
        "channel_id": ch.channel_id.hex(),
        "me": ch.me,
        "funding_pubs": [x.hex() for x in ch.funding_pubs],
        "node_ids": [x.hex() for x in ch.node_ids],
        "chain": ch.chain,
        "latest": ref(commitment_blob(ch.latest)),
        "capacity_msat": ch.capacity_msat,
        "state": int(ch.state),
        "sigs": [x.hex() for x in ch.sigs],
        "remote_ledger_sig": ch.remote_ledger_sig.hex(),
        "latest_proposer": ch.latest_proposer,
        "proposal": None
        if p is None
        else [
            ref(commitment_blob(p.commitment)),
            ref(batch_blob(p.updates)),
            p.sig.hex(),
            p.ledger_sig.hex(),
        ],
        "pending": ref(pending),
        "remote_next_hash": ch.remote_next_hash.hex(),
        "remote_prev_hash": ch.remote_prev_hash.hex(),
        "awaiting_revoke": ch.awaiting_revoke,
        "unrevoked_updates": ref(batch_blob(ch.unrevoked_updates)),
        "unrevoked_removed": ref(_tuple_blob(ch.unrevoked_removed, _encode_htlcs)),
        "remote_secrets": ch.remote_secrets.to_bytes().hex(),
        "next_local_htlc_id": ch.next_local_htlc_id,
        "closing_sigs": [x.hex() for x in ch.closing_sigs],
    }
    doc["extra"], refs = _split_extra(ch.extra, blobs)
    if refs:
        doc["extra_blobs"] = refs
    return doc, blobs


_FIXED: dict[bytes, tuple[tuple[Any, ...], str]] = {}  # channel id -> (fields, their JSON)
# channel id -> (the secrets object itself, its count and last index, their hex): held and
# compared by identity, as an id() of a freed object can come back for another channel end's
_SECRETS: dict[bytes, tuple[Any, tuple[int, int | None], str]] = {}


def channel_doc_json(ch: Channel, pending: tuple[bytes, bytes]) -> tuple[str, Blobs]:
    """`channel_to_doc` as JSON text (``json.loads`` of it is that document), built for the
    commit that writes it: a channel is written by nearly every commit of a payment, and
    `json.dumps` of the whole document cost more than its SQLite statements. The fields that
    never change and the peer's secrets (changed by a revoke only) are formatted once."""
    blobs: Blobs = {}

    def ref(kb: tuple[bytes, bytes]) -> str:
        if len(kb[1]) <= INLINE_MAX:
            return kb[1].hex()
        blobs[kb[0]] = kb[1]
        return "#" + kb[0].hex()

    cid = ch.channel_id
    fields = (ch.me, ch.funding_pubs, ch.node_ids, ch.chain, ch.capacity_msat)
    fixed = _FIXED.get(cid)
    if fixed is None or fixed[0] != fields:
        text = json.dumps(
            {
                "v": VERSION,
                "channel_id": cid.hex(),
                "me": ch.me,
                "funding_pubs": [x.hex() for x in ch.funding_pubs],
                "node_ids": [x.hex() for x in ch.node_ids],
                "chain": ch.chain,
                "capacity_msat": ch.capacity_msat,
            }
        )[1:-1]
        fixed = _remember(_FIXED, cid, (fields, text))
    rs = ch.remote_secrets
    skey = (len(rs.entries), rs.last_index)
    secrets = _SECRETS.get(cid)
    if secrets is None or secrets[0] is not rs or secrets[1] != skey:
        secrets = _remember(_SECRETS, cid, (rs, skey, _secrets_hex(rs)))
    inline, blob_refs = _split_extra(ch.extra, blobs)
    # the names are EXTRA_BLOBS' and the keys hex: no escaping needed
    refs = ", ".join(f'"{k}": "{v}"' for k, v in blob_refs.items())
    refs = f', "extra_blobs": {{{refs}}}' if blob_refs else ""
    inline_json = json.dumps(inline) if inline else "{}"
    p = ch.proposal
    proposal = (
        "null"
        if p is None
        else f'["{ref(commitment_blob(p.commitment))}", "{ref(batch_blob(p.updates))}", '
        f'"{p.sig.hex()}", "{p.ledger_sig.hex()}"]'
    )
    text = (
        f'{{{fixed[1]}, "latest": "{ref(commitment_blob(ch.latest))}", '
        f'"state": {int(ch.state)}, '
        f'"sigs": ["{ch.sigs[0].hex()}", "{ch.sigs[1].hex()}"], '
        f'"remote_ledger_sig": "{ch.remote_ledger_sig.hex()}", '
        f'"latest_proposer": {int(ch.latest_proposer)}, "proposal": {proposal}, '
        f'"pending": "{ref(pending)}", "remote_next_hash": "{ch.remote_next_hash.hex()}", '
        f'"remote_prev_hash": "{ch.remote_prev_hash.hex()}", '
        f'"awaiting_revoke": {"true" if ch.awaiting_revoke else "false"}, '
        f'"unrevoked_updates": "{ref(batch_blob(ch.unrevoked_updates))}", '
        f'"unrevoked_removed": "{ref(_tuple_blob(ch.unrevoked_removed, _encode_htlcs))}", '
        f'"remote_secrets": "{secrets[2]}", "next_local_htlc_id": {int(ch.next_local_htlc_id)}, '
        f'"closing_sigs": ["{ch.closing_sigs[0].hex()}", "{ch.closing_sigs[1].hex()}"], '
        f'"extra": {inline_json}{refs}}}'
    )
    return text, blobs


# parts of `extra` set once when the channel is funded or force-closed (a few hundred bytes
# each, never changed in place): kept as blobs, so the document of a channel in a round stays
# within one SQLite page (4,096 bytes; a longer row spills into overflow pages, and each
# commit then rewrote those and the free list too: 8 pages a commit instead of 1)
EXTRA_BLOBS = ("funding", "funding_sigs", "force_close")


def _split_extra(extra: dict[str, Any], blobs: Blobs) -> tuple[dict[str, Any], dict[str, str]]:
    """`extra` without its EXTRA_BLOBS parts, and those parts' blob keys (their JSON bytes
    added to `blobs`)."""
    if not any(k in extra for k in EXTRA_BLOBS):
        return extra, {}
    inline, refs = {}, {}
    for k, v in extra.items():
        if k in EXTRA_BLOBS:
            key, data = _extra_blob(v)
            blobs[key] = data
            refs[k] = key.hex()
        else:
            inline[k] = v
    return inline, refs


_EXTRA: dict[int, tuple[Any, tuple[bytes, bytes]]] = {}  # id(value) -> (a copy, its blob)


def _extra_blob(value: Any) -> tuple[bytes, bytes]:
    """(key, JSON bytes) of an EXTRA_BLOBS value, encoded again only when it changed: a copy
    kept with the encoding is compared with it (equality of a few fields, not `json.dumps`).
    These values hold strings and integers only (a ledger body, signatures): equality is
    their JSON's equality."""
    hit = _EXTRA.get(id(value))
    if hit is not None and hit[0] == value:
        return hit[1]
    got = _blob(json.dumps(value).encode())
    if len(_EXTRA) >= 4096:
        _EXTRA.clear()
    _EXTRA[id(value)] = (copy.deepcopy(value), got)
    return got


def _secrets_hex(rs: bolt3.SecretStore) -> str:
    """``rs.to_bytes().hex()``: a revoke changes one entry of up to 49, the others are kept."""
    return f"{len(rs.entries):02x}" + "".join(
        [_entry_hex(b, *rs.entries[b]) for b in sorted(rs.entries)]
    )


@functools.lru_cache(maxsize=8192)
def _entry_hex(bucket: int, index: int, secret: bytes) -> str:
    return (bytes([bucket]) + index.to_bytes(6, "big") + secret).hex()


def _remember(cache: dict[bytes, Any], key: bytes, value: Any) -> Any:
    if len(cache) >= 4096:  # a node with more channels than this formats some again
        cache.clear()
    cache[key] = value
    return value


def _join_extra(d: dict[str, Any], blobs: Blobs) -> dict[str, Any]:
    extra = dict(d.get("extra", {}))
    for k, key in d.get("extra_blobs", {}).items():
        data = blobs.get(bytes.fromhex(key))
        if data is None:
            raise ChannelStoreError(f"channel {d['channel_id'][:12]}: blob {key[:12]} missing")
        extra[k] = json.loads(data)
    return extra


def pending_blob(ch: Channel, last: tuple[bytes, bytes] | None) -> tuple[bytes, bytes]:
    """(key, bytes) of the channel's queue; `last` (the one stored) when it has not changed."""
    data = encode_updates(ch.pending)
    return last if last is not None and last[1] == data else _blob(data)


def channel_from_doc(d: dict[str, Any], keys: NodeKeys, blobs: Blobs) -> Channel:
    """A channel from its document (version 1: inline; version 2: with `blobs`)."""
    h = bytes.fromhex
    if d.get("v", 1) > VERSION:  # a newer gateway's: fields this one does not know would be lost
        raise ChannelStoreError(
            f"channel {d.get('channel_id', '?')[:12]}: document version {d['v']} is newer than"
            f" this gateway's ({VERSION}): upgrade the gateway"
        )
    if d.get("v", 1) == 1:
        get: Callable[[str], bytes] = h
        removed = tuple(Htlc.decode(h(x)) for x in d["unrevoked_removed"])
    else:

        def get(key: str) -> bytes:
            if not key.startswith("#"):
                return h(key)  # small: inline
            data = blobs.get(h(key[1:]))
            if data is None:
                raise ChannelStoreError(f"channel {d['channel_id'][:12]}: blob {key[:12]} missing")
            return data

        removed = _decode_htlcs(get(d["unrevoked_removed"]))
    cid = h(d["channel_id"])
    p = d["proposal"]
    return Channel(
        channel_id=cid,
        me=d["me"],
        funding_priv=keys.funding_priv(cid),
        shachain_seed=keys.shachain_seed(cid),
        funding_pubs=(h(d["funding_pubs"][0]), h(d["funding_pubs"][1])),
        node_ids=(h(d["node_ids"][0]), h(d["node_ids"][1])),
        chain=d["chain"],
        node_priv=keys.node_priv,
        latest=Commitment.decode(get(d["latest"])),
        capacity_msat=d["capacity_msat"],
        state=ChannelState(d["state"]),
        sigs=(h(d["sigs"][0]), h(d["sigs"][1])),
        remote_ledger_sig=h(d["remote_ledger_sig"]),
        latest_proposer=d["latest_proposer"],
        proposal=None
        if p is None
        else Proposal(Commitment.decode(get(p[0])), decode_updates(get(p[1])), h(p[2]), h(p[3])),
        pending=list(decode_updates(get(d["pending"]))),
        remote_next_hash=h(d["remote_next_hash"]),
        remote_prev_hash=h(d["remote_prev_hash"]),
        awaiting_revoke=d["awaiting_revoke"],
        unrevoked_updates=decode_updates(get(d["unrevoked_updates"])),
        unrevoked_removed=removed,
        remote_secrets=bolt3.SecretStore.from_bytes(h(d["remote_secrets"])),
        next_local_htlc_id=d["next_local_htlc_id"],
        closing_sigs=(h(d["closing_sigs"][0]), h(d["closing_sigs"][1])),
        extra=_join_extra(d, blobs),
    )
