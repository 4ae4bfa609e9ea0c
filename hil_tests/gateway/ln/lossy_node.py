"""The channel node whose every sg_preimages is lost on the way out, for the process tests of
test_preimages_nodes.py: the FulfillHtlc rounds must settle every payment without the hints.

    python -m hil_tests.gateway.ln.lossy_node [gateway.ln.node options]

Wraps the production `Peer.queue` from outside (as crashing_node.py wraps the commit): the
production code carries no fault injection.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gateway.ln.channel import messages as m
from gateway.ln.node import peer as peer_module
from gateway.ln.node.main import main

log = logging.getLogger("hil_tests.gateway.ln.lossy")


def install() -> None:
    original = peer_module.Peer.queue

    def queue(self: Any, msg: Any) -> None:
        if isinstance(msg, m.Preimages):
            log.warning("fault injection: sg_preimages dropped (%d)", len(msg.preimages))
            return
        original(self, msg)

    peer_module.Peer.queue = queue  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    main(sys.argv[1:])
