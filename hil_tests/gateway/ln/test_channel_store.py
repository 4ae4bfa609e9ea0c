"""The node's channel store (gateway/ln/node/store.py, channel_doc.py) on a real SQLite file:
a channel reloads identical after every step of a round, a commitment is written once, blobs
no longer named are deleted, and version-1 documents (everything inline) still load."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.ln.channel.channel import Channel
from gateway.ln.channel.htlc import encode_updates
from gateway.ln.errors import ChannelStoreError
from gateway.ln.node.channel_doc import VERSION, channel_doc_json, channel_to_doc, pending_blob
from gateway.ln.node.store import Store
from gateway.ln.node.switch import Switch
from hil_tests.gateway.ln.channel_pair import make_pair, node_keys


def _state(ch: Channel) -> tuple:
    p = ch.proposal
    return (
        ch.latest,
        ch.state,
        ch.sigs,
        ch.remote_ledger_sig,
        ch.latest_proposer,
        None if p is None else (p.commitment, p.updates, p.sig, p.ledger_sig),
        list(ch.pending),
        ch.remote_next_hash,
        ch.remote_prev_hash,
        ch.awaiting_revoke,
        ch.unrevoked_updates,
        ch.unrevoked_removed,
        ch.remote_secrets.to_bytes(),
        ch.next_local_htlc_id,
        ch.closing_sigs,
        ch.extra,
    )


class _Side:
    def __init__(self, path: Path, name: str, ch: Channel) -> None:
        self.path, self.keys = path, node_keys(name)
        self.store = Store(path, self.keys)
        self.switch = Switch(self.keys.node_id)
        self.ch = ch
        self.switch.channels[ch.channel_id] = ch
        ch.on_persist = self.store.mark

    peak = 0

    def commit_and_reload(self) -> None:
        # the JSON text the store writes is the document, whatever the channel holds
        pending = pending_blob(self.ch, None)
        text, blobs = channel_doc_json(self.ch, pending)
        assert (json.loads(text), blobs) == channel_to_doc(self.ch, pending)
        self.store.mark(self.ch)
        self.store.commit(self.switch)
        self.peak = max(self.peak, self.blob_rows())
        again = Store(self.path, self.keys)
        sw = Switch(self.keys.node_id)
        again.load(sw)
        assert _state(sw.channels[self.ch.channel_id]) == _state(self.ch)
        again.close()

    def blob_rows(self) -> int:
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT count(*) FROM channel_blobs").fetchone()[0]


def test_channel_reloads_identical_after_every_step_and_blobs_do_not_pile_up(
    tmp_path: Path,
) -> None:
    a, b = make_pair()
    b.extra["note"] = {"text": 'a "quoted" \\ \u00fc\n', "n": [1, None, True]}
    b.extra["funding"] = {"kind": "channel_fund", "nonce": "ab" * 8, "amount_a_msat": 10**10}
    sa, sb = _Side(tmp_path / "a.sqlite", "alice", a), _Side(tmp_path / "b.sqlite", "bob", b)
    # 30 HTLCs a round: commitments and batches above INLINE_MAX, stored as blobs
    preimages = [hashlib.sha256(b"p%d" % i).digest() for i in range(120)]
    for rnd in range(4):
        for p in preimages[rnd * 30 : rnd * 30 + 30]:
            a.queue_add(1000, hashlib.sha256(p).digest(), 500, b'{"a":1000,"e":500}')
        sa.commit_and_reload()  # queued, not proposed
        msg = a.propose()
        assert msg is not None
        a.queue_add(7, hashlib.sha256(b"late%d" % rnd).digest(), 500)  # queued mid-round
        sa.commit_and_reload()
        ack = b.receive_update(msg)
        assert ack is not None
        sb.commit_and_reload()
        rev = a.receive_ack(ack)
        sa.commit_and_reload()
        b.receive_revoke(rev)
        sb.commit_and_reload()
        for ev in b.drain_events():  # b fulfils the adds it knows the preimage of
            pre = {hashlib.sha256(x).digest(): x for x in preimages}.get(ev.add.payment_hash)
            if pre is not None:
                b.queue_fulfill(ev.add.htlc_id, pre)
        msg = b.propose()
        assert msg is not None
        sb.commit_and_reload()
        ack = a.receive_update(msg)
        assert ack is not None
        sa.commit_and_reload()
        rev = b.receive_ack(ack)
        sb.commit_and_reload()
        a.receive_revoke(rev)
        sa.commit_and_reload()
    assert max(sa.peak, sb.peak) >= 2  # blobs were used
    # at rest a channel names only its latest commitment (and its small queue, inline) and
    # its funding body (written once)
    assert sa.blob_rows() <= 1 and sb.blob_rows() <= 2
    with sqlite3.connect(sb.path) as db:
        (doc,) = db.execute("SELECT doc FROM channels").fetchone()
    assert "channel_fund" not in doc and "funding" in json.loads(doc)["extra_blobs"]


def test_a_version_1_document_loads_and_is_rewritten_in_the_current_version(tmp_path: Path) -> None:
    a, b = make_pair()
    a.queue_add(1000, hashlib.sha256(b"x").digest(), 500)
    msg = a.propose()
    assert msg is not None
    a.queue_add(5, hashlib.sha256(b"y").digest(), 500)
    side = _Side(tmp_path / "a.sqlite", "alice", a)
    p = a.proposal
    assert p is not None
    v1 = {  # the inline hex document the store wrote before version 2
        "channel_id": a.channel_id.hex(),
        "me": a.me,
        "funding_pubs": [x.hex() for x in a.funding_pubs],
        "node_ids": [x.hex() for x in a.node_ids],
        "chain": a.chain,
        "latest": a.latest.encode().hex(),
        "capacity_msat": a.capacity_msat,
        "state": int(a.state),
        "sigs": [x.hex() for x in a.sigs],
        "remote_ledger_sig": a.remote_ledger_sig.hex(),
        "latest_proposer": a.latest_proposer,
        "proposal": [
            p.commitment.encode().hex(),
            encode_updates(p.updates).hex(),
            p.sig.hex(),
            p.ledger_sig.hex(),
        ],
        "pending": encode_updates(a.pending).hex(),
        "remote_next_hash": a.remote_next_hash.hex(),
        "remote_prev_hash": a.remote_prev_hash.hex(),
        "awaiting_revoke": a.awaiting_revoke,
        "unrevoked_updates": encode_updates(a.unrevoked_updates).hex(),
        "unrevoked_removed": [h.encode().hex() for h in a.unrevoked_removed],
        "remote_secrets": a.remote_secrets.to_bytes().hex(),
        "next_local_htlc_id": a.next_local_htlc_id,
        "closing_sigs": [x.hex() for x in a.closing_sigs],
        "extra": a.extra,
    }
    side.store.db.execute(
        "INSERT INTO channels VALUES (?, ?, ?)", (a.channel_id, int(a.state), json.dumps(v1))
    )
    again = Store(tmp_path / "a.sqlite", side.keys)
    sw = Switch(side.keys.node_id)
    again.load(sw)
    loaded = sw.channels[a.channel_id]
    assert _state(loaded) == _state(a)
    again.mark(loaded)
    again.commit(sw)
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        doc = json.loads(db.execute("SELECT doc FROM channels").fetchone()[0])
    assert doc["v"] == VERSION and doc["latest"] == a.latest.encode().hex()  # small: inline
    side.commit_and_reload()
    assert b.latest == a.latest


def test_commits_leave_checkpoints_to_checkpoint_and_a_checkpointed_store_reloads(
    tmp_path: Path,
) -> None:
    """A commit never copies the WAL into the database file itself (below the safety
    threshold): the node's ticker does it with `checkpoint()`, off the path of a payment."""
    a, _ = make_pair()
    side = _Side(tmp_path / "a.sqlite", "alice", a)
    side.store.checkpoint()  # the schema, in the database file
    empty = side.path.stat().st_size
    wal = Path(f"{side.path}-wal")
    for i in range(2000):  # past SQLite's default threshold (1000 pages, ~4 MB), far below ours
        a.queue_add(1000 + i, hashlib.sha256(b"c%d" % i).digest(), 500, b"x" * 200)
        side.store.mark(a)
        side.store.commit(side.switch)
        if wal.stat().st_size > 6_000_000:
            break
    assert side.path.stat().st_size == empty  # committed (in the WAL), nothing copied yet
    side.store.checkpoint()
    assert side.path.stat().st_size > empty
    side.commit_and_reload()  # every commit is still there after the copy
    side.store.close()
    side.store.checkpoint()  # after close: a no-op, not a new connection


def test_a_version_2_document_with_its_funding_inline_loads_and_moves_it_to_a_blob(
    tmp_path: Path,
) -> None:
    a, _ = make_pair()
    a.extra["funding"] = {"kind": "channel_fund", "nonce": "cd" * 8, "amount_a_msat": 7}
    a.extra["closing_sent"] = True
    side = _Side(tmp_path / "a.sqlite", "alice", a)
    v2, _ = channel_to_doc(a, pending_blob(a, None))
    v2 = {**v2, "v": 2, "extra": a.extra}  # version 2 kept `extra` whole in the document
    v2.pop("extra_blobs")
    side.store.db.execute(
        "INSERT INTO channels VALUES (?, ?, ?)", (a.channel_id, int(a.state), json.dumps(v2))
    )
    again = Store(tmp_path / "a.sqlite", side.keys)
    sw = Switch(side.keys.node_id)
    again.load(sw)
    loaded = sw.channels[a.channel_id]
    assert _state(loaded) == _state(a)
    again.mark(loaded)
    again.commit(sw)
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        doc = json.loads(db.execute("SELECT doc FROM channels").fetchone()[0])
        assert db.execute("SELECT count(*) FROM channel_blobs").fetchone()[0] == 1
    assert doc["v"] == VERSION and doc["extra"] == {"closing_sent": True}
    assert set(doc["extra_blobs"]) == {"funding"}
    again.close()
    third = Store(tmp_path / "a.sqlite", side.keys)
    sw = Switch(side.keys.node_id)
    third.load(sw)
    assert sw.channels[a.channel_id].extra == a.extra


def test_a_document_of_a_newer_version_is_refused_not_loaded_without_its_fields(
    tmp_path: Path,
) -> None:
    a, _ = make_pair()
    side = _Side(tmp_path / "a.sqlite", "alice", a)
    doc, _ = channel_to_doc(a, pending_blob(a, None))
    doc = {**doc, "v": VERSION + 1, "a_field_of_the_future": 1}
    side.store.db.execute(
        "INSERT INTO channels VALUES (?, ?, ?)", (a.channel_id, int(a.state), json.dumps(doc))
    )
    again = Store(tmp_path / "a.sqlite", side.keys)
    with pytest.raises(ChannelStoreError, match=f"version {VERSION + 1} is newer"):
        again.load(Switch(side.keys.node_id))
    again.close()


def test_the_secrets_written_are_the_channels_own_even_when_an_old_ones_id_comes_back(
    tmp_path: Path,
) -> None:
    # One channel id, its secrets object replaced by another of the same count and index (the
    # other end's, or a reload's): CPython hands a freed object's id() to the next one made,
    # and a cache keyed by id() wrote the freed object's secrets.
    a, _ = make_pair()
    store_type, index = type(a.remote_secrets), 2**48 - 1
    spare = store_type()
    for value in (b"\x01" * 32, b"\x02" * 32, b"\x03" * 32):
        a.remote_secrets = spare  # the previous one is freed here, its id() free for the next
        a.remote_secrets = store_type()
        a.remote_secrets.insert(index, value)
        text, _ = channel_doc_json(a, pending_blob(a, None))
        assert json.loads(text)["remote_secrets"] == a.remote_secrets.to_bytes().hex()
