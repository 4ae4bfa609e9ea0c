"""`LedgerPort` over the real ledger node's HTTP API (gateway.ledger.client, docs/ledger-api.md).

Our node key is the participant key the operator enrolled; bodies and signatures are already
in the ledger's format (canonical JSON, compact low-S ECDSA over the digest), so this adapter
only translates calls and errors. Calls block (urllib); submissions wait for their block.
"""

from __future__ import annotations

from typing import Any

from gateway.ledger.client import LedgerClient, NotFound
from gateway.ledger.errors import LedgerError, TxRejected
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.ledger_port import ChannelView, Signed

MAX_TXS = 1000  # transactions per `POST /v1/txs` (docs/ledger-api.md)
TIMEOUT_S = 15.0  # per request; the client tries each URL 3 times


class HttpLedger:
    def __init__(self, urls: str, timeout: float = TIMEOUT_S) -> None:
        self.client = LedgerClient([u.strip() for u in urls.split(",")], timeout=timeout)
        try:
            self.chain = str(self.client.info()["chain"])
        except LedgerError as exc:
            raise LedgerPortError("unavailable", str(exc)) from exc

    def height(self) -> int:
        try:
            return int(self.client.info()["height"])
        except LedgerError as exc:
            raise LedgerPortError("unavailable", str(exc)) from exc

    def submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        try:
            self.client.submit({"body": body, "sigs": sigs})
        except TxRejected as exc:
            raise LedgerPortError(exc.reason, exc.detail) from exc
        except LedgerError as exc:
            raise LedgerPortError("unavailable", str(exc)) from exc

    def submit_many(self, txs: list[Signed]) -> list[LedgerPortError | None]:
        """One request (`POST /v1/txs`), one wait."""
        out: list[LedgerPortError | None] = []
        for at in range(0, len(txs), MAX_TXS):
            part = txs[at : at + MAX_TXS]
            try:
                results = self.client.submit_many([{"body": b, "sigs": s} for b, s in part])
            except LedgerError as exc:
                out += [LedgerPortError("unavailable", str(exc)) for _ in part]
                continue
            out += [
                LedgerPortError(r.reason, r.detail) if isinstance(r, TxRejected) else None
                for r in results
            ]
        return out

    def channel(self, channel_id: bytes) -> ChannelView | None:
        try:
            d = self.client.channel(channel_id.hex())
        except NotFound:
            return None
        except LedgerError as exc:
            raise LedgerPortError("unavailable", str(exc)) from exc
        return ChannelView(
            channel=d["channel"],
            a=d["a"],
            b=d["b"],
            capacity_msat=int(d["capacity_msat"]),
            status=d["status"],
            dispute_blocks=int(d["dispute_blocks"]),
            close_height=d.get("close_height"),
            state=d.get("state"),
            htlcs=list(d.get("htlcs") or []),
            published=list(d.get("published") or []),
        )

    def balance(self, account: bytes) -> int:
        try:
            return self.client.balance(account.hex())
        except NotFound:
            return 0
        except LedgerError as exc:
            raise LedgerPortError("unavailable", str(exc)) from exc
