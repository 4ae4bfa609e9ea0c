"""An error inside one step never ends the meter's loop; repeated errors reset the meter."""

from boards.emulated.host.board import RESET_EXIT, BoardConfig, EmulatedBoard

SCRIPT = """
import meter_app
app = meter_app.MeterApp(0)
for _ in app.boot():
    gc.collect()
def boom():
    raise ValueError("boom")
real_step = app.step
app.step = boom
app.safe_step()
app.step = real_step
app.safe_step()
print("still running after a failed step")
app.step = boom
for _ in range(6):
    app.safe_step()
print("never reached")
"""


def test_failed_steps_are_printed_and_five_in_a_row_reset_the_meter(tmp_path):
    board = EmulatedBoard(BoardConfig(flash_dir=tmp_path))
    try:
        out = board.run_script(SCRIPT)
    finally:
        board.close()
    assert "step failed (1 in a row)" in out.stdout and "ValueError: boom" in out.stdout
    assert "still running after a failed step" in out.stdout
    assert "too many failed steps: resetting" in out.stdout
    assert "never reached" not in out.stdout
    assert out.exit_code == RESET_EXIT
