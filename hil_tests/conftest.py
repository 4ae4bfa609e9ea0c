"""Fixtures shared by the whole HIL suite. Area-specific fixtures live in each area's conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil_tests import REPO_ROOT


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
