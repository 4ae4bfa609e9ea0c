"""The first test of a module pays its module fixture's bring-up outside its own timeout
(hil_tests/timeout_budget.py); the others, and the test's own work, keep the usual limit."""

from __future__ import annotations

import subprocess
import sys

from hil_tests import REPO_ROOT

MODULE = """
import time
import pytest

@pytest.fixture(scope="module")
def slow_bring_up():
    time.sleep(2.5)  # longer than the tests' own timeout
    return 1

@pytest.mark.timeout(2)
def test_first_sets_it_up(slow_bring_up):
    assert slow_bring_up == 1

@pytest.mark.timeout(2)
def test_second_reuses_it(slow_bring_up):
    assert slow_bring_up == 1

@pytest.mark.timeout(1)
def test_own_work_keeps_its_limit(slow_bring_up):
    time.sleep(3)
"""


def _run(tmp_path, *plugin: str) -> str:
    (tmp_path / "test_module.py").write_text(MODULE)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         *plugin, "-o", "timeout_method=signal", str(tmp_path / "test_module.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return out.stdout


def test_the_test_that_sets_up_a_module_fixture_gets_the_bring_up_on_top(tmp_path):
    out = _run(tmp_path, "-p", "hil_tests.timeout_budget")
    assert "2 passed, 1 failed" in out or "1 failed, 2 passed" in out, out
    assert "test_own_work_keeps_its_limit" in out.split("short test summary")[-1], out


def test_without_it_the_bring_up_counts_against_the_first_test(tmp_path):
    out = _run(tmp_path)
    assert "test_first_sets_it_up" in out.split("short test summary")[-1], out
