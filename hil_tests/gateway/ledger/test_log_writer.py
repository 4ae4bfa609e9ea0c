"""Group commit of the etcd log (gateway/ledger/log_writer.py) on a real three-member cluster."""

from __future__ import annotations

import os
import threading
import time

import pytest

from gateway.ledger import log_writer
from gateway.ledger.etcd import EtcdClient
from gateway.ledger.log_writer import LogWriter
from hil_tests.gateway.ledger.etcd_cluster import ETCD, start_cluster

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = [
    pytest.mark.needs("etcd (the Debian package etcd-server)", ETCD is not None),
    pytest.mark.xdist_group("gateway.ledger.test_log_writer"),
]


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("etcd"))
    yield EtcdClient(cluster.endpoints)
    cluster.stop()


def _key(tag: str) -> bytes:
    return f"/test/{tag}/{os.urandom(8).hex()}".encode()


def test_one_txn_creates_its_keys_at_one_revision_and_an_existing_key_is_not_overwritten(etcd):
    keys = [_key("many") for _ in range(3)]
    assert etcd.create_many([(k, b"v%d" % i) for i, k in enumerate(keys)]) == [True] * 3
    got = [etcd.get(k) for k in keys]
    assert [kv.value for kv in got if kv] == [b"v0", b"v1", b"v2"]
    assert len({kv.create_revision for kv in got if kv}) == 1
    fresh = _key("many")
    # one key exists already: each is created on its own, the existing value stays
    assert etcd.create_many([(keys[1], b"other"), (fresh, b"new")]) == [False, True]
    assert etcd.get(keys[1]).value == b"v1"  # type: ignore[union-attr]
    assert etcd.get(fresh).value == b"new"  # type: ignore[union-attr]


def test_concurrent_writers_share_txns_and_each_learns_what_it_created(etcd, monkeypatch):
    monkeypatch.setattr(log_writer, "MAX_TXN_OPS", 7)  # a full txn leaves the rest for the next
    writer = LogWriter(etcd)  # started once every write is queued: they must share txns
    existing = _key("writer")
    etcd.create(existing, b"first")
    results: dict[int, list[bool]] = {}
    keys = {i: [_key("writer") for _ in range(1 + i % 3)] for i in range(40)}
    keys[5] = [existing, *keys[5]]

    def submit(i: int) -> None:
        results[i] = writer.write([(k, b"%d" % i) for k in keys[i]])

    threads = [threading.Thread(target=submit, args=(i,)) for i in keys]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(writer._queue) < len(keys):  # noqa: SLF001
        assert time.monotonic() < deadline
        time.sleep(0.01)
    writer.start()
    for t in threads:
        t.join(60)
    writer.stop()
    assert results[5] == [False] + [True] * (len(keys[5]) - 1)
    assert all(results[i] == [True] * len(keys[i]) for i in keys if i != 5)
    assert etcd.get(existing).value == b"first"  # type: ignore[union-attr]
    for i, ks in keys.items():
        for k in ks[1:] if i == 5 else ks:
            assert etcd.get(k).value == b"%d" % i  # type: ignore[union-attr]
    writes, items = len(keys), sum(len(k) for k in keys.values())
    assert items / 7 <= writer.txns < writes  # shared, and none over MAX_TXN_OPS


def test_a_write_after_stop_is_refused(etcd):
    writer = LogWriter(etcd).start()
    writer.stop()
    with pytest.raises(Exception, match="stopping"):
        writer.write([(_key("stopped"), b"x")])
