"""The rig's children die with it (the reaper), and its ports never collide (ports.py)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from hil_tests import REPO_ROOT
from hil_tests.rig import ports, procs

# a rig process: two children in their own groups (one with a grandchild), then it waits
RIG = textwrap.dedent("""
    import subprocess, sys, time
    from hil_tests.rig import procs
    procs.take_stop_signals()
    a = procs.spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    b = procs.spawn(["sh", "-c", "sleep 120 & sleep 120"])
    time.sleep(0.5)
    print(a.pid, b.pid, flush=True)
    sys.stdin.readline()
    {end}
""")

# what a parent can leave the rig: SIGINT and SIGQUIT ignored (a shell script's background job:
# `pytest -n 2 ... &` gave it to every xdist worker and their rigs), SIGHUP ignored (nohup), the
# stop signals blocked
LEFT = {
    "terminal": "",
    "ignored": "for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):"
    " signal.signal(s, signal.SIG_IGN)",
    "blocked": "signal.pthread_sigmask(signal.SIG_BLOCK, procs.STOP_SIGNALS)",
}
# the parent's part, then exec of the rig (the same pid: what an ignore or a block survives)
PARENT = textwrap.dedent("""
    import os, signal, sys
    from hil_tests.rig import procs
    {left}
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
""")


_group_alive = procs.group_alive


def _run_rig(end: str, left: str = "") -> tuple[subprocess.Popen[str], list[int]]:
    code = [sys.executable, "-c", PARENT.format(left=left), RIG.format(end=end)]
    rig = subprocess.Popen(code, cwd=REPO_ROOT,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert rig.stdout is not None and rig.stdin is not None
    groups = [int(x) for x in rig.stdout.readline().split()]
    assert len(groups) == 2 and all(_group_alive(g) for g in groups)
    rig.stdin.write("go\n")
    rig.stdin.flush()
    return rig, groups


def _gone(groups: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_group_alive(g) for g in groups):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("left", LEFT)
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_children_die_with_the_rig(how, left):
    # short sleeps, not one long one: a SIGINT caught just before `sleep` enters the kernel is
    # acted on only when the sleep ends (CPython runs its handlers between bytecodes)
    rig, groups = _run_rig("while True: time.sleep(0.1)", LEFT[left])
    try:
        rig.send_signal(how)
        try:
            rig.wait(timeout=60)  # the rig itself (its stdout stays open while children live)
        except subprocess.TimeoutExpired:
            with open(f"/proc/{rig.pid}/status") as f:
                masks = [line.strip() for line in f if line.startswith(("SigBlk", "SigIgn"))]
            pytest.fail(f"the rig outlived {signal.Signals(how).name}: {masks}")
        assert _gone(groups, timeout=30), "a child outlived the rig"
        rig.communicate(timeout=30)
    finally:
        if rig.poll() is None:
            rig.kill()
        for g in groups:
            if _group_alive(g):
                os.killpg(g, signal.SIGKILL)


def test_a_child_stopped_in_order_is_forgotten_and_the_rest_reaped():
    # the rig stops one child itself, then ends normally: the other one is reaped too
    rig, groups = _run_rig("procs.stop(a)\nprint(a.poll() is not None, flush=True)")
    assert rig.stdout is not None
    assert rig.stdout.readline().strip() == "True"
    rig.communicate(timeout=10)
    assert _gone(groups)


def test_ports_come_from_below_the_ephemeral_range_and_never_twice(tmp_path):
    low, _ = ports.ephemeral_range()
    a, b = ports.PortPool(tmp_path), ports.PortPool(tmp_path)
    got_a = [a.port() for _ in range(ports.BLOCK + 5)]  # crosses into a second block
    got_b = [b.port() for _ in range(50)]
    assert len(set(got_a)) == len(got_a) and not set(got_a) & set(got_b)
    assert all(ports.FLOOR <= p < low for p in got_a + got_b)
    assert len({p // ports.BLOCK for p in got_a}) == 2


def test_a_port_something_listens_on_is_skipped(tmp_path):
    pool = ports.PortPool(tmp_path)
    first = pool.port()
    if (first + 2) % ports.BLOCK < 2:
        pytest.skip("at the end of a block")
    with socket.create_server(("127.0.0.1", first + 1)):
        assert not ports.usable(first + 1)
        assert pool.port() == first + 2


def test_another_process_gets_other_blocks(tmp_path):
    code = ("import sys; from pathlib import Path; from hil_tests.rig import ports;"
            "p = ports.PortPool(Path(sys.argv[1])); print(p.port()); sys.stdin.read()")  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO_ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert other.stdout is not None
        theirs = int(other.stdout.readline()) // ports.BLOCK
        pool = ports.PortPool(tmp_path)
        mine = {pool.port() // ports.BLOCK for _ in range(3 * ports.BLOCK)}
        assert theirs not in mine  # their block stays theirs while they live
    finally:
        other.communicate("")
