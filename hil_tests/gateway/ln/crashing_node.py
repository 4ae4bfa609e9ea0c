"""The channel node with SIGKILL fault injection, for the crash torture test (torture.py).

    python -m hil_tests.gateway.ln.crashing_node <point>:<n> [gateway.ln.node options]

SIGKILLs the process the n-th time it reaches <point>: ``before_commit`` (a peer is about to
commit the store before sending), ``after_commit`` (committed, nothing sent yet) or
``after_send`` (a message was handled and the replies drained). The hooks wrap the production
`Peer` from outside; production code carries no fault injection.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from gateway.ln.node import peer as peer_module
from gateway.ln.node.main import main

POINTS = ("before_commit", "after_commit", "after_send")
log = logging.getLogger("hil_tests.gateway.ln.crash")


class _CrashAt:
    def __init__(self, spec: str) -> None:
        point, n = spec.split(":")
        if point not in POINTS:
            raise SystemExit(f"unknown crash point {point!r}; one of {', '.join(POINTS)}")
        self.point, self.n, self.hits = point, int(n), 0

    def reach(self, point: str) -> None:
        if point != self.point:
            return
        self.hits += 1
        if self.hits == self.n:
            log.warning("fault injection: SIGKILL at %s #%d", point, self.hits)
            os.kill(os.getpid(), signal.SIGKILL)


def install(spec: str) -> None:
    """Wrap every new Peer's commit callback and its connection's drain with the crash point."""
    crash = _CrashAt(spec)
    original_init = peer_module.Peer.__init__

    def init(self: Any, node_id: bytes, conn: Any, commit: Callable[[], None], *rest: Any) -> None:
        def commit_with_crash() -> None:
            crash.reach("before_commit")
            commit()
            crash.reach("after_commit")

        drain = conn.drain

        async def drain_with_crash() -> None:
            await drain()
            crash.reach("after_send")

        conn.drain = drain_with_crash
        original_init(self, node_id, conn, commit_with_crash, *rest)

    peer_module.Peer.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    install(sys.argv[1])
    main(sys.argv[2:])
