"""Starting the grid node's listeners: a port that is taken is said in the log and tried again,
and a bring-up that fails says why instead of leaving the node silently absent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("gateway.grid")

LISTEN_RETRY_S = 2.0


def log_failure(task: asyncio.Task[Any]) -> None:
    """A grid node that did not come up says why (else it would sit there, silently absent)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the grid node did not come up", exc_info=exc)


async def listening(start: Callable[[], Any], what: str) -> Any:
    """`await start()`, again every LISTEN_RETRY_S while its port is taken: said in the log each
    time (the meter bridge runs on meanwhile; the grid node comes up once the port is free)."""
    while True:
        try:
            return await start()
        except OSError as exc:
            log.error("%s: %s (retrying in %gs)", what, exc.strerror or exc, LISTEN_RETRY_S)
            await asyncio.sleep(LISTEN_RETRY_S)
