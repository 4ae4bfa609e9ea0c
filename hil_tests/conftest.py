"""Fixtures shared by the whole HIL suite. Area-specific fixtures live in each area's conftest.py."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hil_tests import REPO_ROOT
from hil_tests.leaks import reap_leaked
from hil_tests.timeout_budget import pytest_runtest_protocol  # noqa: F401 (a hook)

# Hypothesis times each example: its default 200 ms deadline and the too_slow health check measure
# the machine, not the code, and fail on a loaded 2-core CI host (crypto, MicroPython, I/O).
# Loaded before any test module is imported, so every @settings(...) inherits it and keeps its own
# max_examples; examples stay random (no derandomize).
settings.register_profile("hil", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hil")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(what, available): a system service the test runs (mosquitto, etcd); skipped when"
        " missing, but a failure when CI=true (CI installs them)",
    )


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`-n 2` (plain `--dist load`) with whole modules kept together where a module asks for it.

    `load` sends consecutive chunks of tests to whichever worker is free, so a module's tests can
    be split between both workers: its module fixture is then set up twice (a grid, three node
    processes, an etcd cluster) and tests written in order see a fresh one. The second half of
    test_grid_e2e.py on a rig of its own fails (`assert 1 == 2` tokens). xdist's own remedy,
    `--dist loadgroup`, does nothing with pytest 9 (it rewrites `item._nodeid`, which pytest 9
    no longer reads). Here a module whose source marks `pytest.mark.xdist_group(...)` is one
    work unit; every other test is a unit of its own, handed out as workers free up."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    @functools.cache
    def grouped(module: str) -> bool:
        try:
            return "pytest.mark.xdist_group(" in (root / module).read_text(encoding="utf-8")
        except OSError:
            return False

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if grouped(module) else nodeid

    return ModuleGroups(config, log)  # type: ignore[arg-type]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        what, available = mark.args
        if not available:
            if _in_ci():
                pytest.fail(f"{what} is missing, and CI must run this test (tools/run installs it)")
            pytest.skip(f"needs {what} (tools/run installs it)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After a module's last test (its module fixtures are gone): kill gateway-side processes
    it leaked, and say so (hil_tests/leaks.py)."""
    yield
    if nextitem is not None and getattr(nextitem, "module", None) is getattr(item, "module", None):
        return
    for cmd in reap_leaked():
        warnings.warn(f"{item.path.name} leaked a process (killed): {cmd[:200]}", stacklevel=1)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close G's table file if a test opened it. The firmware keeps it open for the device's
    lifetime (sgcore.secp256k1_table), which CPython reports as a ResourceWarning at exit."""
    table = sys.modules.get("sgcore.secp256k1_table")
    if table is not None:
        table.use_table(table._path)  # closes the open file; the path stays as it was
