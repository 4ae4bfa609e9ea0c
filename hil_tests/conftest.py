"""Fixtures shared by the whole HIL suite. Area-specific fixtures live in each area's conftest.py."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hil_tests import REPO_ROOT
from hil_tests.leaks import reap_leaked

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
