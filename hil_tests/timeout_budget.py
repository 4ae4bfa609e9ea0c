"""A test that sets up a module fixture gets the bring-up's time on top of its own timeout.

pytest-timeout counts fixture setup against the test that triggers it: the first test of a
module whose module fixture brings up a grid (three gateways, a ledger, a board) spent most of
its 300 s on that bring-up on a loaded 2-core machine, and timed out for it. Here, just before
pytest-timeout arms its timer, a test that will set up a module-scoped fixture not yet set up
in this process gets `SETUP_BUDGET_S` more. Its own work keeps the usual limit; a bring-up that
hangs is still stopped. (hil_tests/conftest.py imports the hook; a test passes it with `-p`.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

SETUP_BUDGET_S = 600.0


def _own_timeout(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
        return None if value is None else float(value)
    value = getattr(item.config, "_env_timeout", None)  # --timeout, PYTEST_TIMEOUT, the ini
    return None if value is None else float(value)


def sets_up_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for defs in info.name2fixturedefs.values():
        fixture = defs[-1]
        if fixture.scope in ("module", "package") and fixture.cached_result is None:
            return True
    return False


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    timeout = _own_timeout(item)
    if timeout and sets_up_a_module_fixture(item):
        item.add_marker(pytest.mark.timeout(timeout + SETUP_BUDGET_S), append=False)
    yield
