"""Journal power-cut torture (CI variant): >= 200 SIGKILLs of MicroPython appending and acking."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil_tests.firmware.torture import run_torture

KILLS = 200


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_journal_survives_random_sigkills(tmp_path: Path) -> None:
    model = run_torture(tmp_path, kills=KILLS, seed=20240601)
    # the journal was really exercised: many records went through, segments were compacted
    assert model.committed > 10 * KILLS
    assert model.acked > model.committed - 24 - 1
    assert model.opens >= KILLS // 2
