"""Assemble a running ledger node from its configuration (embedded or replicated)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from gateway import pooled_http
from gateway.ledger import api
from gateway.ledger.chain import Chain
from gateway.ledger.config import LedgerConfig
from gateway.ledger.node import EmbeddedNode
from gateway.ledger.store import Store
from gateway.pooled_http import PooledHTTPServer

log = logging.getLogger(__name__)


@dataclass
class RunningLedger:
    node: api.Node
    server: PooledHTTPServer
    thread: threading.Thread
    stopped: bool = False

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.node.stop()
        self.node.chain.store.close()


def start(config: LedgerConfig) -> RunningLedger:
    chain = Chain(Store(config.db), config.validator_key(), config.genesis())
    node: api.Node
    if config.replicated:
        from gateway.ledger.replicated import ReplicatedNode

        node = ReplicatedNode(chain, config)
    else:
        node = EmbeddedNode(chain, config.max_block_txs, config.idle_block_ms)
    node.start()
    limits = pooled_http.Limits(
        workers=config.http_workers,
        max_connections=config.max_connections,
        idle_timeout_s=config.idle_timeout_s,
        max_body=2 * api.MAX_BODY,
    )
    server = api.serve(
        node, config.listen_host, config.listen_port, config.commit_timeout_s, limits
    )
    thread = threading.Thread(target=server.serve_forever, name="ledger-http", daemon=True)
    thread.start()
    log.info("ledger %s (%s) at height %d", chain.chain_id[:16], node.mode, chain.tip.height)
    return RunningLedger(node, server, thread)
