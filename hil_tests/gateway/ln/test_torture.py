from __future__ import annotations

from hil_tests.gateway.ln.torture import POINTS, run


def test_sigkill_at_every_step_of_an_update_loses_nothing(tmp_path):
    assert run(tmp_path, steps=3, points=POINTS) == 3 * len(POINTS) * 2
