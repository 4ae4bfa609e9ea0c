"""The MQTT tests' board script (mqtt_rig.BoardScript): a script that overstays its join() is
stopped (Ctrl-C) before its board is closed, never closed under a firmware still running (whose
next sleep or UART call would use descriptor numbers other files hold by then)."""

from __future__ import annotations

import pytest

from hil_tests.fd_audit import started_since, threads_now
from hil_tests.firmware.mqtt_rig import BoardScript

FOREVER = """
while True:
    board.sleep_ms(20)
"""


def test_a_script_that_overstays_is_stopped_before_its_board_is_closed(tmp_path):
    threads = threads_now()
    script = BoardScript(tmp_path / "flash", FOREVER).start()
    with pytest.raises(AssertionError, match="did not finish within 1"):
        script.join(timeout=1)
    assert not script.running()
    assert script.board.wake._closed  # closed only after the firmware's thread ended
    assert not any(t.is_alive() for t in started_since(threads))
