"""HTTP client of the ledger node (urllib), used by gateways and the payment-channel engine.

    client = LedgerClient(["http://127.0.0.1:8720"])
    chain = client.info()["chain"]
    tx = txs.make("withdraw", chain, account=me.pubkey, amount_msat=5000).signed_by(me)
    receipt = client.submit(tx)          # waits until stored in a block; raises TxRejected

Several base URLs (replicas) may be given: on a connection failure or a 503 the next one is
tried. Submission is idempotent by tx id, so retrying is always safe.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from gateway.ledger.errors import LedgerError, LedgerUnavailable, TxRejected
from gateway.ledger.txs import Tx


class NotFound(LedgerError):
    """The ledger has no such object (HTTP 404)."""


class LedgerClient:
    def __init__(self, urls: str | Sequence[str], timeout: float = 15.0, retries: int = 3) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.timeout = timeout
        self.retries = retries
        self._current = 0

    def _request(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        last: Exception | None = None
        for attempt in range(self.retries * len(self.urls)):
            url = self.urls[self._current % len(self.urls)] + path
            request = urllib.request.Request(
                url, data=data, method=method, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return dict(json.loads(response.read()))
            except urllib.error.HTTPError as exc:
                body = _error_body(exc)
                if exc.code == 404:
                    raise NotFound(body.get("detail", path)) from None
                if exc.code in (400, 422):
                    raise TxRejected(
                        body.get("reason", "malformed"), body.get("detail", ""), body.get("tx_id")
                    ) from None
                last = LedgerUnavailable(f"{url}: HTTP {exc.code} {body.get('detail', '')}")
            except (OSError, ValueError) as exc:
                last = LedgerUnavailable(f"{url}: {exc}")
            self._current += 1
            if attempt + 1 >= len(self.urls):
                time.sleep(min(0.1 * attempt, 1.0))
        raise last if last is not None else LedgerUnavailable("no ledger URL")

    def submit(self, tx: Tx | dict[str, Any]) -> dict[str, Any]:
        """Submit and wait until committed; returns the receipt (`status`, `tx_id`, `height`, ...)."""
        return self._request("POST", "/v1/tx", tx.to_json() if isinstance(tx, Tx) else tx)

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


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        return dict(json.loads(exc.read()).get("error", {}))
    except (ValueError, AttributeError, OSError):
        return {}
