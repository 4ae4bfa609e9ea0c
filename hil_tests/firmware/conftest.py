"""Fixtures for running firmware modules inside real MicroPython (WASI build under wasmtime)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from boards.emulated.host.wasm import RunOutcome, run_snippet
from hil_tests import REPO_ROOT

FIRMWARE_LIB = REPO_ROOT / "firmware" / "lib"
TEST_LIB = Path(__file__).resolve().parent / "mpy"
PRELUDE = "import sys\nsys.path.insert(0, '/lib')\nsys.path.insert(0, '/tlib')\n"

MpyRunner = Callable[..., RunOutcome]


def run_mpy(code: str, flash_dir: Path | None = None, **kwargs: object) -> RunOutcome:
    """Run `code` in MicroPython with firmware/lib at /lib and the test helpers at /tlib;
    a MicroPython exception fails the calling test with the guest's traceback."""
    outcome = run_snippet(
        PRELUDE + code,
        rom_dirs={"/lib": FIRMWARE_LIB, "/tlib": TEST_LIB},
        flash_dir=flash_dir,
        **kwargs,  # type: ignore[arg-type]
    )
    if outcome.exit_code != 0:
        pytest.fail(f"MicroPython exited {outcome.exit_code}:\n{outcome.stdout}\n{outcome.stderr}")
    return outcome


def json_lines(outcome: RunOutcome, tag: str = "J ") -> list:
    """The JSON values a guest printed on lines starting with `tag`."""
    return [
        json.loads(line[len(tag) :]) for line in outcome.stdout.splitlines() if line.startswith(tag)
    ]


@pytest.fixture
def mpy() -> MpyRunner:
    return run_mpy
