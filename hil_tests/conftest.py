"""Fixtures shared by the whole HIL suite. Area-specific fixtures live in each area's conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil_tests import REPO_ROOT


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
