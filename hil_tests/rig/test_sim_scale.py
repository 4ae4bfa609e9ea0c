"""`sgrid sim` at scale, the cheap parts: the speed it picks for a grid's size, the control API's
wait, and a node that does not answer ending the run with one line (no grid is started)."""

import socket

import pytest
from click.testing import CliRunner

from hil_tests.rig.broker import free_port
from hil_tests.rig.microgrid import NodeSpec
from hil_tests.rig.sim import cli, invariants
from hil_tests.rig.sim.node import API_TIMEOUT_MAX_S, NodeTimeout, SimNode, api_timeout_s
from hil_tests.rig.sim.speed import auto_speed


def test_the_auto_speed_keeps_720x_for_the_default_grid_and_slows_down_for_more_meters():
    assert auto_speed(9, cores=2) == 720  # the default grid: 10 nodes, 9 meters
    speeds = [auto_speed(b, cores=2) for b in (9, 10, 24, 49, 55, 200, 5000)]
    assert speeds == sorted(speeds, reverse=True) and speeds[2] < 240 and speeds[3] < 120
    assert all(s % 5 == 0 and s >= 5 for s in speeds)
    assert auto_speed(49, cores=8) > auto_speed(49, cores=2)
    # a big grid's boards are left less of the machine than the default grid's (its gateways
    # forward each other's payments): --homes 50 (55 meters) at no more than 30x on 2 cores
    assert auto_speed(55, cores=2) <= 30 and auto_speed(24, cores=2) < 180


def test_the_control_api_wait_grows_with_the_grid_and_the_load_and_is_capped():
    assert api_timeout_s(10, load=1.0, cores=2) == 30
    assert api_timeout_s(50, load=1.0, cores=2) > api_timeout_s(25, load=1.0, cores=2) > 30
    assert api_timeout_s(10, load=100.0, cores=2) > 30
    assert api_timeout_s(500, load=500.0, cores=2) == API_TIMEOUT_MAX_S


def _node(tmp_path, port: int) -> SimNode:
    n = SimNode(NodeSpec("home-7", "home", None), tmp_path, control_port=port)
    (n.state_dir / "node").mkdir(parents=True)
    token = n.state_dir / "node" / "control_token"
    token.write_text("ab" * 32)
    token.chmod(0o600)
    return n


def test_a_node_that_does_not_answer_is_one_line_naming_it_and_the_call(tmp_path):
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        n = _node(tmp_path, silent.getsockname()[1])
        with pytest.raises(NodeTimeout) as got:
            n.api("/channels", timeout=0.3)
    msg = str(got.value)
    assert "\n" not in msg and msg.startswith("home-7: control API /channels")
    assert "0.3 s" in msg and "timed out" in msg
    with pytest.raises(NodeTimeout, match="home-7: control API /info .*refused"):
        _node(tmp_path / "b", free_port()).api("/info", timeout=1)


def test_sgrid_sim_ends_with_one_line_and_status_3_when_a_node_does_not_answer(
    tmp_path, monkeypatch
):
    def run(opts, console, on_up=None):
        raise NodeTimeout("home-7: control API /channels did not answer within 30 s (timed out)")

    monkeypatch.setattr(cli, "run", run)
    got = CliRunner().invoke(cli.sim, ["--homes", "50", "--workdir", str(tmp_path / "w")])
    assert got.exit_code == 3, got.output
    assert "Traceback" not in got.output
    lines = [ln for ln in got.output.splitlines() if ln.startswith("sgrid sim:")]
    assert len(lines) == 1 and "home-7" in lines[0] and "/channels" in lines[0]
    assert "speed 30x (55 emulated meters" in got.output


def test_prepaid_over_credit_is_excused_only_within_one_step_and_on_the_meters_own_books():
    ok_view = {"exhausted_openings": 1, "last_reading_credit_wh": -20}
    got = invariants.prepaid_within_credit(
        {"h": 120}, {"h": 100}, 0, 0, {"h": ok_view}, {"h": 27.4}
    )
    assert got["holds"] and got["within_one_step"]["h"]["over_wh"] == 20 and "over" not in got
    for view, step in (
        (ok_view, 12.0),  # more than the rig ever sent at once: the meter let bursts through
        ({"exhausted_openings": 0, "last_reading_credit_wh": -20}, 27.4),  # never opened
        ({"exhausted_openings": 1, "last_reading_credit_wh": 80}, 27.4),  # books disagree
        ({"exhausted_openings": 1}, 27.4),  # no signed reading says so
    ):
        bad = invariants.prepaid_within_credit(
            {"h": 120}, {"h": 100}, 0, 0, {"h": view}, {"h": step}
        )
        assert not bad["holds"] and bad["worst_over_wh"] == 20 and "h" in bad["over"], (view, step)
    assert not invariants.prepaid_within_credit({"h": 120}, {"h": 100}, 0, 0)["holds"]
