import sqlite3
import threading

import pytest

from gateway.errors import EnrollmentError
from gateway.ingest.store import MeterRow, ReadingStore
from hil_tests.gateway.soft_meter import SoftMeter

ROUNDS = 20  # two connections that both find no row and both insert: nearly every round


@pytest.fixture
def two(tmp_path):
    """Two stores on one file: two gateway processes (`sgrid gateway enroll-meter`, the rig)."""
    stores = [ReadingStore(tmp_path / "r.sqlite3") for _ in range(2)]
    yield stores
    for s in stores:
        s.close()


def _at_once(stores: list[ReadingStore], keys: list[bytes]) -> list[MeterRow | Exception]:
    """stores[i].enroll(keys[i], label f"by-{i}"), the threads released together."""
    got: list[MeterRow | Exception] = [RuntimeError("not run")] * len(stores)
    start = threading.Barrier(len(stores))

    def enroll(i: int) -> None:
        start.wait()
        try:
            got[i] = stores[i].enroll(keys[i], f"by-{i}")
        except Exception as exc:  # noqa: BLE001 - the test names it
            got[i] = exc

    threads = [threading.Thread(target=enroll, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_a_new_key_enrolled_by_two_at_once_is_one_meter_both_get(two):
    for i in range(ROUNDS):
        m = SoftMeter(bytes([i + 1]) * 32)
        first, second = _at_once(two, [m.pubkey, m.pubkey])
        assert first == second, (first, second)
        assert isinstance(first, MeterRow) and first.pubkey == m.pubkey
        assert first.label in ("by-0", "by-1") and first.next_seq == 0
        assert two[0].enroll(m.pubkey) == first  # and again: the same row
    assert sorted(r.num for r in two[1].meters()) == list(range(ROUNDS))


def test_new_keys_enrolled_at_once_get_numbers_of_their_own(two):
    for i in range(ROUNDS):
        a, b = SoftMeter(bytes([i + 1]) * 32), SoftMeter(bytes([i + 101]) * 32)
        rows = _at_once(two, [a.pubkey, b.pubkey])
        assert all(isinstance(r, MeterRow) for r in rows), rows
    assert sorted(r.num for r in two[0].meters()) == list(range(2 * ROUNDS))


def test_another_key_under_an_enrolled_meter_id_is_refused_and_changes_nothing(tmp_path):
    m, other = SoftMeter(b"\x01" * 32), SoftMeter(b"\x02" * 32)
    store = ReadingStore(tmp_path / "r.sqlite3")
    try:
        # a key whose id collides cannot be made: the row another process stored is written here
        with sqlite3.connect(tmp_path / "r.sqlite3") as db:
            db.execute(
                "INSERT INTO meters (meter_id, pubkey, label, enrolled_at, anchor_seq, next_seq,"
                " head_hash, num) VALUES (?, ?, 'theirs', 0, 0, 0, NULL, 0)",
                (m.meter_id, other.pubkey),
            )
        before = store.meters()
        with pytest.raises(EnrollmentError, match=f"{m.hex} already enrolled with another key"):
            store.enroll(m.pubkey, "mine")
        assert store.meters() == before
    finally:
        store.close()
