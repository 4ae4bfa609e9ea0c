"""S0 pulse input (firmware/lib/s0.py) in MicroPython: exact mWh for any imp/kWh."""

from __future__ import annotations

import pytest

from hil_tests.firmware.conftest import json_lines, run_mpy

SCRIPT = """
import json, s0, fakes
def run(imp_per_kwh, export, pulses):
    c = fakes.FakeCounter()
    c.n = 7  # pulses counted before the driver started are not ours
    meter = s0.S0(c, imp_per_kwh, export)
    got = []
    for p in pulses:
        c.n = p
        got.append(list(meter.take_energy()))
    return [got, meter.restarts]
out = [run(*case) for case in CASES]
print('J ' + json.dumps(out))
"""

CASES = [
    # imp/kWh, export, counter values seen
    (1000, False, [7, 12, 12, 1012]),
    (800, False, [8, 9, 10, 11]),
    (3, False, [8, 9, 10]),
    (1000, True, [9, 2]),  # export meter; the counter restarted at 0 and counted 2
]


def test_s0_pulses_become_exact_energy() -> None:
    got = json_lines(run_mpy(f"CASES = {CASES!r}\n" + SCRIPT))[0]
    assert got[0] == [[[0, 0], [5000, 0], [0, 0], [1_000_000, 0]], 0]
    assert got[1] == [[[1250, 0]] * 4, 0]
    assert got[2][0] == [[333_333, 0], [333_333, 0], [333_334, 0]]  # carried, sums to 1 kWh
    assert got[3] == [[[0, 2000], [0, 2000]], 1]


def test_s0_refuses_a_nonsense_constant() -> None:
    out = run_mpy(
        "import s0, fakes\n"
        "try:\n"
        "    s0.S0(fakes.FakeCounter(), 0)\n"
        "except ValueError as e:\n"
        "    print('J \"%s\"' % e)\n"
    )
    assert json_lines(out) == ["imp/kWh must be positive"]


@pytest.mark.parametrize("imp", [1, 7, 1000, 2000])
def test_s0_in_cpython_matches_integer_math(imp: int) -> None:
    import importlib.util

    from hil_tests.firmware.conftest import FIRMWARE_LIB

    spec = importlib.util.spec_from_file_location("fw_s0", FIRMWARE_LIB / "s0.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Counter:
        n = 0

        def count(self) -> int:
            return self.n

    c = Counter()
    meter = mod.S0(c, imp)
    total = 0
    for step in range(1, 500, 37):
        c.n += step
        total += meter.take_energy()[0]
        assert total == c.n * 1_000_000 // imp
