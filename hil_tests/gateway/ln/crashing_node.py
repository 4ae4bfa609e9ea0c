"""The channel node with SIGKILL fault injection, for the crash torture test (torture.py).

    python -m hil_tests.gateway.ln.crashing_node <point>:<n> [gateway.ln.node options]

SIGKILLs the process the n-th time it reaches <point>: ``before_commit`` (the node is about to
commit a dirty store: before a peer sends, or before a waiting payer is answered),
``after_commit`` (committed, nothing sent or answered yet) or ``after_send`` (a message was
handled and the replies drained). The hooks wrap the production `NodeCore.commit` (every commit
path goes through it) and each `Peer`'s connection from outside; production code carries no
fault injection.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from gateway.ln.node import peer as peer_module
from gateway.ln.node.core import NodeCore
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
    """Wrap the node's commit (only a commit with something dirty is a step) and every new
    Peer's connection drain with the crash point."""
    crash = _CrashAt(spec)
    original_commit = NodeCore.commit
    original_init = peer_module.Peer.__init__

    def commit(self: NodeCore) -> None:
        dirty = bool(self.store.dirty_channels or self.switch.dirty)
        if dirty:
            crash.reach("before_commit")
        original_commit(self)
        if dirty:
            crash.reach("after_commit")

    def init(self: Any, node_id: bytes, conn: Any, *rest: Any) -> None:
        drain = conn.drain

        async def drain_with_crash() -> None:
            await drain()
            crash.reach("after_send")

        conn.drain = drain_with_crash
        original_init(self, node_id, conn, *rest)

    NodeCore.commit = commit  # type: ignore[method-assign]
    peer_module.Peer.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    install(sys.argv[1])
    main(sys.argv[2:])
