"""HTTP client of the ledger node (urllib), used by gateways and the payment-channel engine.

    client = LedgerClient(["http://127.0.0.1:8720"])
    chain = client.info()["chain"]
    tx = txs.make("withdraw", chain, account=me.pubkey, amount_msat=5000).signed_by(me)
    receipt = client.submit(tx)          # waits until stored in a block; raises TxRejected
    results = client.submit_many(batch)  # one receipt or TxRejected per tx, one round trip

Several base URLs (replicas) may be given: on a connection failure or a 503 the next one is
tried. Submission is idempotent by tx id, so retrying is always safe. Each thread keeps one
HTTP/1.1 keep-alive connection per base URL (the node closes idle ones; a stale one is retried).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from gateway.ledger.errors import LedgerUnavailable, NotFound, TxRejected
from gateway.ledger.txs import Tx


class LedgerClient:
    def __init__(self, urls: str | Sequence[str], timeout: float = 15.0, retries: int = 3) -> None:
        self.urls = [u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)]
        self.timeout = timeout
        self.retries = retries
        self._current = 0
        self._local = threading.local()

    def _connection(self, base: str) -> http.client.HTTPConnection:
        conns: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(base)
        if conn is None:
            parts = urllib.parse.urlsplit(base)
            kind = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = conns[base] = kind(parts.netloc, timeout=self.timeout)
        return conn

    def _drop(self, base: str) -> None:
        conn = self._local.__dict__.get("conns", {}).pop(base, None)
        if conn is not None:
            conn.close()

    def _exchange(self, base: str, method: str, path: str, data: bytes | None) -> tuple[int, bytes]:
        conn = self._connection(base)
        prefix = urllib.parse.urlsplit(base).path
        headers = {"Content-Type": "application/json"}
        try:
            conn.request(method, prefix + path, body=data, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except BaseException:
            self._drop(base)
            raise
        if response.will_close:
            self._drop(base)
        return response.status, body

    def _request(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        last: Exception | None = None
        for attempt in range(self.retries * len(self.urls)):
            base = self.urls[self._current % len(self.urls)]
            try:
                status, raw = self._exchange(base, method, path, data)
                if status == 200:
                    return dict(json.loads(raw))
                body = _error_body(raw)
                if status == 404:
                    raise NotFound(body.get("detail", path))
                if status in (400, 413, 422):
                    raise TxRejected(
                        body.get("reason", "malformed"), body.get("detail", ""), body.get("tx_id")
                    )
                last = LedgerUnavailable(f"{base}{path}: HTTP {status} {body.get('detail', '')}")
            except (OSError, ValueError, http.client.HTTPException) as exc:
                last = LedgerUnavailable(f"{base}{path}: {exc}")
            self._current += 1
            if attempt + 1 >= len(self.urls):
                time.sleep(min(0.1 * attempt, 1.0))
        raise last if last is not None else LedgerUnavailable("no ledger URL")

    def submit(self, tx: Tx | dict[str, Any]) -> dict[str, Any]:
        """Submit and wait until committed; returns the receipt (`status`, `tx_id`, `height`, ...)."""
        return self._request("POST", "/v1/tx", tx.to_json() if isinstance(tx, Tx) else tx)

    def submit_many(
        self, batch: Sequence[Tx | dict[str, Any]]
    ) -> list[dict[str, Any] | TxRejected]:
        """Submit up to 1000 transactions in one request; wait until all are committed or refused.

        One result per transaction, in order: its receipt, or the TxRejected that refused it.
        """
        wire = [t.to_json() if isinstance(t, Tx) else t for t in batch]
        answer = self._request("POST", "/v1/txs", {"txs": wire})
        out: list[dict[str, Any] | TxRejected] = []
        for result in answer["results"]:
            error = result.get("error")
            if error is None:
                out.append(dict(result))
            else:
                out.append(
                    TxRejected(
                        error.get("reason", "malformed"),
                        error.get("detail", ""),
                        error.get("tx_id"),
                    )
                )
        return out

    def info(self) -> dict[str, Any]:
        return self._request("GET", "/v1/info")

    def account(self, pubkey: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/accounts/{pubkey}")

    def balance(self, pubkey: str) -> int:
        return int(self.account(pubkey)["balance_msat"])

    def channel(self, channel_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/channels/{channel_id}")

    def meter(self, meter_id_or_pubkey: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/meters/{meter_id_or_pubkey}")

    def market(self, market_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/markets/{urllib.parse.quote(market_id, safe='')}")

    def listing(self, listing_id: str) -> dict[str, Any]:
        """A seed-003 auction listing: state, orders and (once closed) its trades."""
        return self._request("GET", f"/v1/listings/{urllib.parse.quote(listing_id, safe='')}")

    def settlement(self, period_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/settlements/{urllib.parse.quote(period_id, safe='')}")

    def tx(self, tx_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/tx/{tx_id}")

    def tx_proof(self, tx_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/tx/{tx_id}/proof")

    def block(self, height: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/blocks/{height}")


def _error_body(raw: bytes) -> dict[str, Any]:
    try:
        return dict(json.loads(raw).get("error", {}))
    except (ValueError, AttributeError, TypeError):
        return {}
