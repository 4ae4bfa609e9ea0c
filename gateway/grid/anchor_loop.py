"""The grid node's anchoring loop: batches of stored readings go to the ledger as anchor txs.

Every `anchor.interval_s` the node submits what is pending, then makes a new batch of the readings
stored since the last one (gateway/grid/anchoring.py) and submits it. A batch is durable in the
anchor book before it is submitted, and submitting is idempotent by tx id, so a crash or a ledger
away never loses or doubles an anchor: pending batches are retried every `anchor.retry_s`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from gateway.config import GatewayConfig
from gateway.errors import GatewayError
from gateway.grid import anchoring
from gateway.ingest.store import ReadingStore
from gateway.ledger.client import LedgerClient, NotFound
from gateway.ledger.errors import LedgerError, TxRejected
from gateway.ledger.keys import SigningKey

log = logging.getLogger("gateway.grid")


class Anchorer:
    """Makes and submits anchor batches for one gateway's reading store."""

    def __init__(
        self,
        cfg: GatewayConfig,
        store: ReadingStore,
        anchors: anchoring.AnchorBook,
        ledger: LedgerClient,
        node_priv: Callable[[], bytes],
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.anchors = anchors
        self.ledger = ledger
        self._node_priv = node_priv  # the channel node's key signs the anchors
        self._enrolled: set[bytes] = set()

    def _ledger_knows(self, meter_id: bytes) -> bool:
        if meter_id in self._enrolled:
            return True
        try:
            self.ledger.meter(meter_id.hex())
        except NotFound:
            return False
        self._enrolled.add(meter_id)
        return True

    def _submit_pending(self) -> int:
        committed = 0
        for batch in self.anchors.pending():
            try:
                receipt_ = self.ledger.submit(batch.tx)  # idempotent by tx id
            except TxRejected as exc:
                log.warning("anchor batch %d refused: %s (retrying)", batch.batch_id, exc)
                continue
            self.anchors.committed(batch.batch_id, int(receipt_.get("height", 0)))
            committed += 1
            log.info(
                "anchor batch %d committed in block %s", batch.batch_id, receipt_.get("height")
            )
        return committed

    def anchor_once(self) -> int:
        """Submit pending batches, then make and submit a new one; returns batches committed."""
        committed = self._submit_pending()
        if self.anchors.pending():
            return committed  # the ledger is refusing or away: no new batch until it is back
        ranges = anchoring.next_batch(
            self.store, self.anchors, self._ledger_knows, self.cfg.grid.anchor.max_batch
        )
        if not ranges:
            return committed
        key = SigningKey(self._node_priv())
        chain = str(self.ledger.info()["chain"])
        nonce = f"{self.cfg.site}-{secrets.token_hex(8)}"
        tx, count = anchoring.make_anchor(self.store, ranges, key, chain, nonce)
        self.anchors.add(tx, count, ranges, time.time())  # durable before it is submitted
        log.info("anchoring %d readings (root %s)", count, tx.body["merkle_root"][:16])
        return committed + self._submit_pending()

    async def run(self) -> None:
        a = self.cfg.grid.anchor
        while True:
            try:
                await asyncio.to_thread(self.anchor_once)
                wait = a.interval_s if not self.anchors.pending() else a.retry_s
            except (LedgerError, GatewayError) as exc:
                log.warning("anchoring: %s (retrying in %gs)", exc, a.retry_s)
                wait = a.retry_s
            except Exception:
                log.exception("anchoring failed")
                wait = a.retry_s
            await asyncio.sleep(wait)
