"""HIL: power cuts at the worst moments for the meter's energy and credit (real firmware).

- between closing an interval and journaling its signed reading: the interval's energy must show
  up in a later reading, so the deltas still add up to the totals (docs/reading-format.md);
- while consumption has not reached the registers' checkpoint: credit must not come back, and a
  critical load's debt must not shrink (docs/credit-tokens.md, the reserve).
"""

from __future__ import annotations

import json
import time

import pytest

from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.flash_reader import journal_records
from hil_tests.rig.power_cut import deltas_problems
from hil_tests.rig.site import Site
from sgcore import reading as rd

RESERVE = 20  # credit_reserve_wh's default


def _readings(flash) -> list[rd.Reading]:
    recs = [rd.decode(r)[0] for _, r in sorted(journal_records(flash).items())]
    return [r for r in recs if r.kind == rd.KIND_READING]


def test_a_cut_between_closing_an_interval_and_signing_it_loses_no_energy(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text(json.dumps({"interval_s": 60, "checkpoint_s": 10}))
    board = BoardProcess(flash_dir=flash, board_id="cut", clock=VirtualClock(speed=20.0))
    try:
        board.start()
        board.expect("meter ready", timeout=60)
        board.expect(r"record \d+ signed and journaled", timeout=30)  # a first interval is out
        hit = False
        for _ in range(5):
            board.pulses(5)
            time.sleep(1.0)  # 20 virtual seconds: the 5 Wh reach the registers' checkpoint
            m = board.expect(r"interval (\d+)\.\.(\d+) closed: import 5 Wh", timeout=30)
            board.power_cut()  # right after the close: the reading is being signed
            ends = {r.end for r in _readings(flash)}
            board.start()
            board.expect("meter ready", timeout=60)
            if int(m.group(2)) not in ends:
                hit = True  # the cut landed inside the close-to-sign window
                break
        assert hit, "no cut landed between the close and the signed reading"
        board.expect(r"record \d+ signed and journaled", timeout=30)
        board.expect(r"record \d+ signed and journaled", timeout=30)
    finally:
        board.stop()
    readings = _readings(flash)
    assert deltas_problems(readings) == []
    assert readings[-1].import_wh == sum(r.interval_import_wh for r in readings)
    assert sum(r.interval_import_wh for r in readings) >= 5  # the 5 Wh are in some interval


@pytest.fixture
def site(tmp_path):
    fast = {"interval_s": 60, "min_switch_s": 0, "checkpoint_s": 600}
    s = Site(tmp_path, meter_config={"home": fast, "hospital": {**fast, "critical_load": True}})
    s.start()
    yield s
    s.stop()


def _status(meter, import_wh: int | None = None) -> tuple[int, str]:
    """(credit, relay) from the button's status line; with `import_wh`, from the first line that
    shows the meter has counted that much (pulses are counted on its next step, which a loaded
    host may run long after a fixed pause)."""
    until = None if import_wh is None else (lambda m: int(m.group(1)) == import_wh)
    m = meter.board.status(until=until)
    return int(m.group(2)), m.group(3)


def _cut_and_boot(meter) -> None:
    meter.board.power_cut()
    meter.board.start()
    meter.board.expect("meter ready", timeout=60)


def test_a_power_cut_never_gives_credit_back(site):
    home = site.meters["home"]
    issuer = site.issuer()
    token = issuer.energy(home.meter_id, 20, int(site.clock.now()) + 3600, b"pay-20")
    site.send_token(home, token)
    home.board.expect(r"token 1 accepted: credit 20 Wh")
    home.board.wait_gpio("relay", 1)
    for n in (5, 10):
        home.board.pulses(5)
        assert _status(home, import_wh=n)[1] == "closed"
    assert _status(home, import_wh=10) == (10, "closed")
    _cut_and_boot(home)  # long before the registers' checkpoint (600 s)
    m = home.board.status()
    credit, imported = int(m.group(2)), int(m.group(1))
    assert 10 - RESERVE <= credit <= 10  # never more than was left; at most the reserve less
    # what the relay lets through from here until it opens: one pulse at a time, each counted
    # by the meter before the relay is looked at (the relay follows in the same step)
    released, relay = 0, m.group(3)
    while relay == "closed" and released < 40:
        home.board.pulses(1)
        released += 1
        _, relay = _status(home, import_wh=imported + released)
    assert relay == "open"
    assert 10 + released <= 20 + 1  # paid 20 Wh: at most one pulse more before the relay opens


def test_a_power_cut_never_shrinks_a_critical_loads_debt(site):
    hospital = site.meters["hospital"]
    hospital.board.wait_gpio("relay", 1)
    hospital.board.pulses(4)  # the first energy after boot reaches the checkpoint at once...
    assert _status(hospital, import_wh=4) == (-4, "closed")
    hospital.board.pulses(36)  # ...the rest only after checkpoint_s
    assert _status(hospital, import_wh=40) == (-40, "closed")
    _cut_and_boot(hospital)
    debt, _ = _status(hospital)
    assert -40 - RESERVE <= debt <= -40
