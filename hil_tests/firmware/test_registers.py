"""Energy registers (firmware/lib/registers.py): properties under CPython, same results in MicroPython."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from hil_tests.firmware.conftest import FIRMWARE_LIB, json_lines, run_mpy


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fw_registers", FIRMWARE_LIB / "registers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


registers = _load()
T0 = 1_700_000_000 - 1_700_000_000 % 900  # an interval boundary

# one step of a meter's life: energy flows for `dt` seconds, maybe a power cut after it
steps = st.lists(
    st.tuples(
        st.integers(0, 400_000),  # import mWh in this step
        st.integers(0, 400_000),  # export mWh in this step
        st.integers(1, 700),  # seconds that pass
        st.integers(-9000, 9000),  # a power sample, W
        st.sampled_from(
            [0, 1, 2]
        ),  # 1: a power cut after this step; 2: between a close and its reading
    ),
    min_size=1,
    max_size=60,
)


class Meter:
    """Registers + checkpoint wired the way the firmware does it: a close reaches the checkpoint
    once its reading is journaled; at boot the last journaled reading is the floor."""

    def __init__(self, path: Path, interval_s: int) -> None:
        self.path = path
        self.interval_s = interval_s
        self.journaled: list[object] = []
        self.boot()

    def boot(self) -> None:
        self.regs = registers.Registers(self.interval_s)
        self.ckpt = registers.Checkpoint(str(self.path), period_s=60, log=lambda _m: None)
        self.ckpt.load(self.regs)
        if self.journaled:
            last = self.journaled[-1]
            self.regs.floor(last.import_wh, last.export_wh, last.end)

    def run(self, imp: int, exp: int, now: int, power: int, journal: bool = True) -> object:
        self.regs.add_energy(imp, exp)
        self.regs.sample(power, 2300)
        closed = self.regs.tick(now)
        if closed is None:
            self.ckpt.maybe_save(self.regs, now * 1000)
        elif journal:  # signed and journaled, then the checkpoint takes in the close
            self.journaled.append(closed)
            self.regs.commit_close()
            self.ckpt.save(self.regs)
        return closed


@settings(max_examples=60, deadline=None)
@given(steps=steps, interval_s=st.sampled_from([60, 900]))
def test_totals_never_go_backwards_and_intervals_add_up(
    tmp_path_factory, steps, interval_s
) -> None:
    meter = Meter(tmp_path_factory.mktemp("ckpt") / "registers", interval_s)
    now = T0
    fed_imp = fed_exp = 0
    saved_imp = saved_exp = 0  # what the last checkpoint holds
    readings = []
    last = (0, 0)
    for imp, exp, dt, power, cut in steps:
        now += dt
        closed = meter.run(imp, exp, now, power, journal=cut != 2)
        if closed is not None and cut == 2:
            closed = None  # the cut came before the reading was signed: it never existed
        fed_imp += imp
        fed_exp += exp
        regs = meter.regs
        assert regs.import_wh >= last[0] and regs.export_wh >= last[1]
        last = (regs.import_wh, regs.export_wh)
        if meter.ckpt.writes:
            saved_imp, saved_exp = regs.import_wh, regs.export_wh
            meter.ckpt.writes = 0
        if closed is not None:
            readings.append(closed)
            # aligned to the wall clock; a late close (time jumped) covers the whole span it missed
            assert closed.start % interval_s == 0 and closed.end % interval_s == 0
            assert closed.end - closed.start >= interval_s
            assert closed.end <= now
        # between power cuts the registers are exact: Wh + remainder == every mWh fed
        assert regs.import_wh * 1000 + regs.imp_mwh == fed_imp
        assert regs.export_wh * 1000 + regs.exp_mwh == fed_exp
        if cut:
            meter.boot()
            # a power cut loses at most what came after the last checkpoint (or the last
            # journaled reading), never more
            r = meter.journaled[-1] if meter.journaled else None
            floor = (
                (max(saved_imp, r.import_wh), max(saved_exp, r.export_wh))
                if r
                else (saved_imp, saved_exp)
            )
            assert (meter.regs.import_wh, meter.regs.export_wh) == floor
            last = floor
            fed_imp = meter.regs.import_wh * 1000 + meter.regs.imp_mwh
            fed_exp = meter.regs.export_wh * 1000 + meter.regs.exp_mwh
    # conservation: the interval deltas of the readings add up to the change of the totals
    for prev, cur in zip(readings, readings[1:], strict=False):
        assert cur.start == prev.end  # no interval is skipped, even across a cut
        assert cur.import_wh - prev.import_wh == cur.interval_import_wh
        assert cur.export_wh - prev.export_wh == cur.interval_export_wh
        assert cur.import_wh >= prev.import_wh and cur.export_wh >= prev.export_wh
    if readings:
        assert sum(r.interval_import_wh for r in readings) == readings[-1].import_wh
        assert sum(r.interval_export_wh for r in readings) == readings[-1].export_wh


@given(deltas=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 5000)), max_size=200))
def test_sub_wh_remainders_are_carried(deltas) -> None:
    regs = registers.Registers()
    for imp, exp in deltas:
        regs.add_energy(imp, exp)
    assert regs.import_wh * 1000 + regs.imp_mwh == sum(d[0] for d in deltas)
    assert regs.export_wh * 1000 + regs.exp_mwh == sum(d[1] for d in deltas)


def test_negative_energy_is_refused_and_changes_nothing() -> None:
    regs = registers.Registers()
    regs.add_energy(1500, 0)
    for bad in ((-1, 0), (0, -5)):
        try:
            regs.add_energy(*bad)
        except ValueError:
            pass
        else:
            raise AssertionError("negative energy accepted")
    assert (regs.import_wh, regs.imp_mwh, regs.export_wh) == (1, 500, 0)


def test_unset_clock_counts_energy_but_closes_nothing() -> None:
    regs = registers.Registers(60)
    regs.add_energy(5000, 0)
    assert regs.tick(0) is None and regs.start == 0
    assert regs.tick(T0 + 30) is None and regs.start == T0
    regs.add_energy(1000, 0)
    closed = regs.tick(T0 + 61)
    assert closed is not None and closed.interval_import_wh == 6  # energy before the clock too


def test_checkpoint_is_bounded_and_its_format_is_fixed(tmp_path: Path) -> None:
    assert struct.calcsize(registers._FMT) == registers._LEN
    regs = registers.Registers(900)
    ckpt = registers.Checkpoint(str(tmp_path / "r"), period_s=60)
    saved = 0
    for second in range(3600):  # one hour of steady 1 kW, one update a second
        regs.add_energy(278, 0)
        closed = regs.tick(T0 + second)
        saved += ckpt.maybe_save(regs, second * 1000, force=closed is not None)
    assert saved <= 3600 // 60 + 4  # every 60 s plus the interval closes
    assert ckpt.writes == saved
    idle = registers.Registers()
    assert not ckpt.maybe_save(idle, 10**9)  # nothing changed: no write


def test_damaged_checkpoint_falls_back_to_the_other_file_or_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "r"
    regs = registers.Registers()
    ckpt = registers.Checkpoint(str(path))
    regs.add_energy(12_345, 678)
    ckpt.save(regs)
    good = path.read_bytes()
    regs.add_energy(1_000, 0)
    ckpt.save(regs)
    (tmp_path / "r.tmp").write_bytes(good)  # an older copy left behind
    data = bytearray(path.read_bytes())
    data[9] ^= 0x40
    path.write_bytes(bytes(data))
    logs: list[str] = []
    fresh = registers.Registers()
    assert registers.Checkpoint(str(path), log=logs.append).load(fresh)
    assert (fresh.import_wh, fresh.imp_mwh, fresh.export_wh) == (12, 345, 0)
    assert logs and "damaged" in logs[0]
    fresh.floor(13, 0)  # the last journaled reading said 13 Wh: never below it
    assert fresh.import_wh == 13
    (tmp_path / "r.tmp").unlink()
    assert not registers.Checkpoint(str(path), log=logs.append).load(registers.Registers())


SCENARIO = [(1200, 0, 20, 300), (0, 2500, 50, -900), (7000, 10, 40, 4000), (0, 0, 200, 0)] * 6


def _run_scenario(mod, flash: str) -> list:
    regs = mod.Registers(60)
    ckpt = mod.Checkpoint(flash + "/registers", 60, log=lambda _m: None)
    ckpt.load(regs)
    now = T0
    out = []
    for imp, exp, dt, power in SCENARIO:
        now += dt
        regs.add_energy(imp, exp)
        regs.sample(power, 2301)
        iv = regs.tick(now)
        ckpt.maybe_save(regs, now * 1000, force=iv is not None)
        if iv is not None:
            out.append([getattr(iv, f) for f in mod.Interval.__slots__])
    return out + [[regs.import_wh, regs.export_wh, ckpt.writes]]


def test_micropython_and_cpython_compute_the_same_readings(tmp_path: Path) -> None:
    import inspect

    (tmp_path / "cpy").mkdir()
    expected = json.loads(json.dumps(_run_scenario(registers, str(tmp_path / "cpy"))))
    source = inspect.getsource(_run_scenario)
    outcome = run_mpy(
        "import json, registers\n"
        f"T0 = {T0}\nSCENARIO = {SCENARIO!r}\n{source}\n"
        "print('J ' + json.dumps(_run_scenario(registers, '/flash')))\n",
        tmp_path,
    )
    got = json_lines(outcome)[0]
    assert got == expected
    assert len(got) > 3 and any(row[9] is False for row in got[:-1])
