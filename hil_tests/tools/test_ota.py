"""Signed OTA updates on an emulated meter over a real mosquitto: a good bundle is fetched,
checked, installed A/B and confirmed; forged, wrong-board, downgrade and truncated bundles are
refused with a reason and change nothing; a release that cannot start is rolled back; the
journal survives."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from gateway.crypto import SiteKey
from hil_tests.rig.broker import mosquitto_available
from hil_tests.rig.flash_reader import journal_records
from hil_tests.tools.ota_rig import SITE, start_rig
from sgcore import ota_bundle as ob
from tools.ota import publish

pytestmark = pytest.mark.needs("mosquitto", mosquitto_available())


@pytest.fixture
def rig(tmp_path):
    r = start_rig(tmp_path)
    yield r
    r.board.stop()
    r.broker.stop()


def _publish(rig, bundle, **kw):
    return publish(bundle, rig.broker.host, rig.broker.port, SITE, **kw)


def _wait_records(flash, n, timeout=60):
    deadline = time.monotonic() + timeout
    while len(journal_records(flash)) < n:
        assert time.monotonic() < deadline, "no readings journaled"
        time.sleep(0.3)
    return journal_records(flash)


def test_a_signed_update_is_installed_confirmed_and_keeps_the_journal(rig):
    board = rig.board
    board.pulses(30)
    before = _wait_records(board.flash_dir, 1)
    bundle = rig.bundle("0.2.0")
    t0 = time.monotonic()
    _publish(rig, bundle)
    board.expect(r"ota: fetching 0\.2\.0", timeout=60)
    board.expect(r"ota: 0\.2\.0 complete in slot a", timeout=240)
    board.expect(r"seamless-grid-meter 0\.2\.0 on board", timeout=60)
    board.expect(r"ota: running 0\.2\.0, confirmed", timeout=60)
    print(f"OTA of {len(bundle.stream)} bytes: {time.monotonic() - t0:.1f} s wall")
    st = rig.ota_state()
    assert st["active"] == "a" and st["trial"] == "" and st["tries"] == 0
    assert not (board.flash_dir / "ota" / "dl.json").exists()
    after = journal_records(board.flash_dir)
    assert all(after.get(seq) == rec for seq, rec in before.items())  # journal untouched
    # the same offer again is the running version: nothing happens; a newer one goes to slot b
    board.control(op="state")
    _publish(rig, rig.bundle("0.2.1"))
    board.expect(r"ota: 0\.2\.1 complete in slot b", timeout=240)
    board.expect(r"ota: running 0\.2\.1, confirmed", timeout=90)
    assert rig.ota_state()["active"] == "b"


def test_forged_wrong_board_downgrade_and_truncated_bundles_change_nothing(rig):
    board = rig.board
    forged = rig.bundle("0.2.0", key=SiteKey.load_or_create(rig.tmp / "thief.key"))
    _publish(rig, forged)
    board.expect(r"ota: update refused: bad signature on 0\.2\.0", timeout=90)

    wrong = rig.bundle("0.2.0", board="esp32_devkitc")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect(rig.broker.host, rig.broker.port)
    c.loop_start()
    c.publish(ob.offer_topic(SITE, "emulated"), wrong.offer, qos=1, retain=True).wait_for_publish()
    c.loop_stop()
    c.disconnect()
    board.expect(r"ota: update refused: for board esp32_devkitc, this is emulated", timeout=60)

    _publish(rig, rig.bundle("0.0.9"))
    board.expect(r"ota: update refused: downgrade to 0\.0\.9", timeout=60)

    good = rig.bundle("0.2.0")
    chunks = good.chunks()
    chunks[-1] = chunks[-1][:-5]
    _publish(rig, good, chunks=chunks)
    board.expect(r"ota: update refused: chunk \d+ has \d+ bytes, expected \d+: bundle truncated",
                 timeout=240)  # fmt: skip
    assert (
        rig.ota_state().get("trial", "") == ""
        and rig.ota_state().get("active", "factory") == "factory"
    )
    assert not (board.flash_dir / "ota" / "a").exists()
    assert not (board.flash_dir / "ota" / "dl.json").exists()
    assert board.alive()


def test_a_release_that_cannot_start_is_rolled_back_by_the_meter(rig):
    board = rig.board
    _publish(rig, rig.bundle("0.3.0", broken=True))
    board.expect(r"ota: 0\.3\.0 complete in slot a", timeout=240)
    board.expect(r"ota: image a does not start", timeout=60)
    board.expect(r"ota: rolled back: image a did not come up in 3 boots", timeout=60)
    board.expect(r"seamless-grid-meter 0\.1\.0 on board", timeout=60)
    board.expect(r"meter ready", timeout=60)
    st = rig.ota_state()
    assert st["active"] == "factory" and st["trial"] == ""


def test_power_cuts_during_an_update_always_leave_a_meter_that_boots(rig):
    """SIGKILLs at random instants of the download, the check and the install (a short run of
    hil_tests/bench/bench_ota.py): every restart boots, and the update completes."""
    import random

    board = rig.board
    rnd = random.Random(14)
    _publish(rig, rig.bundle("0.2.0"))
    board.expect(r"ota: fetching 0\.2\.0", timeout=60)
    for _ in range(4):
        time.sleep(rnd.uniform(0.2, 1.5))
        board.power_cut()
        board.start(wait_banner=False)
        board.expect(r"seamless-grid-meter 0\.[12]\.0 on board", timeout=60)  # it boots
        if rig.ota_state().get("active") == "a":
            break
    board.expect(r"ota: running 0\.2\.0, confirmed|meter ready", timeout=240)
    deadline = time.monotonic() + 240
    while rig.ota_state().get("active") != "a":
        assert time.monotonic() < deadline, f"update never completed: {rig.ota_state()}"
        time.sleep(0.5)


def test_a_release_that_never_reaches_the_broker_is_rolled_back_after_its_trial_time(tmp_path):
    rig = start_rig(tmp_path, ota_trial_s=30)  # 3 s of real time at speed 10
    try:
        board = rig.board
        _publish(rig, rig.bundle("0.4.0", offline=True))
        board.expect(r"ota: 0\.4\.0 complete in slot a", timeout=240)
        board.expect(r"seamless-grid-meter 0\.4\.0 on board", timeout=60)
        board.expect(r"ota: no heartbeat from the new image in 30 s: resetting", timeout=60)
        board.expect(r"ota: rolled back: image a did not come up in 3 boots", timeout=120)
        board.expect(r"seamless-grid-meter 0\.1\.0 on board", timeout=60)
        st = rig.ota_state()
        assert st["active"] == "factory" and st["trial"] == ""
    finally:
        rig.board.stop()
        rig.broker.stop()
