"""Waiting for a condition the rig cannot be told of: poll it."""

from __future__ import annotations

import time
from typing import Any


def wait_until(
    pred: Any,
    timeout: float = 60.0,
    what: str = "condition",
    every: float = 0.05,
    error: type[Exception] = AssertionError,
) -> Any:
    """Poll `pred` every `every` s until it is truthy and return its value; `error` naming
    `what` after `timeout` s. The timeout is headroom for a loaded machine, not a figure a
    test measures."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise error(f"timed out waiting for {what}")
