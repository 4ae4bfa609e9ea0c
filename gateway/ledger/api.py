"""The HTTP JSON API of a ledger node (a bounded thread pool). Routes: docs/ledger-api.md §6."""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol

from gateway import pooled_http
from gateway.ledger import keys, merkle, thread_cpu
from gateway.ledger.chain import Chain, Receipt
from gateway.ledger.config import default_http_workers
from gateway.ledger.errors import LedgerUnavailable, NotFound, TxRejected

log = logging.getLogger(__name__)
OPENAPI = Path(__file__).with_name("openapi.json")
MAX_BODY = 1024 * 1024  # a force close with 4,000 HTLC outputs is ~0.6 MB
MAX_BATCH = 1000  # transactions in one POST /v1/txs
NO_BODY = object()  # _body() answered 400 already (a JSON body may well be null)


class Node(Protocol):
    mode: str
    chain: Chain
    lock: threading.RLock

    def submit(self, value: Any, timeout: float = 10.0) -> Receipt: ...

    def submit_many(
        self, values: list[Any], timeout: float = 10.0
    ) -> list[Receipt | TxRejected]: ...

    def start(self) -> Any: ...

    def stats(self) -> dict[str, float]: ...

    def stop(self) -> None: ...


def tx_proof(chain: Chain, tx_id: str) -> dict[str, Any]:
    where = chain.locate(tx_id)
    block = chain.store.block(where[0]) if where else None
    if where is None or block is None:
        raise NotFound(f"no committed transaction {tx_id}")
    ids = [bytes.fromhex(t.id) for t in block.txs]
    return {
        "tx_id": tx_id,
        "tx": block.txs[where[1]].to_json(),
        "index": where[1],
        "count": len(ids),
        "path": [h.hex() for h in merkle.audit_path(ids, where[1])],
        "header": block.header,
        "hash": block.hash,
        "signature": block.signature,
    }


def _get(node: Node, path: str) -> dict[str, Any]:
    chain = node.chain
    if path == "/v1/info":
        tip = chain.tip  # replaced whole once its block is stored
        return {
            "chain": chain.chain_id,
            "height": tip.height,
            "tip_hash": tip.hash,
            "operator": chain.view.operator,
            "validator": chain.view.validator,
            "mode": node.mode,
        }
    if path == "/v1/stats":
        return {"mode": node.mode, **node.stats(), **thread_cpu.by_role()}
    if m := re.fullmatch(r"/v1/tx/([0-9a-f]{64})", path):
        receipt = chain.receipt(m[1])
        if receipt is None:
            raise NotFound(f"no committed transaction {m[1]}")
        block = chain.store.block(receipt.height)
        assert block is not None
        return {"tx": block.txs[receipt.index].to_json(), **receipt.to_json()}
    if m := re.fullmatch(r"/v1/tx/([0-9a-f]{64})/proof", path):
        return tx_proof(chain, m[1])
    if m := re.fullmatch(r"/v1/blocks/(\d{1,15})", path):
        block = chain.store.block(int(m[1]))
        if block is None:
            raise NotFound(f"no block {m[1]}")
        return block.to_json()
    # the state of the stored blocks: never waits for a block being validated, written or fsynced
    with chain.view_lock:
        state = chain.view
        if m := re.fullmatch(r"/v1/accounts/([0-9a-f]{66})", path):
            who = state.participants.get(m[1])
            if who is None:
                raise NotFound(f"account {m[1]} is not enrolled")
            return {
                "account": m[1],
                "balance_msat": state.balances.get(m[1], 0),
                "role": who.role,
                "name": who.name,
            }
        if m := re.fullmatch(r"/v1/channels/([0-9a-f]{64})", path):
            channel = state.channels.get(m[1])
            if channel is None:
                raise NotFound(f"no channel {m[1]}")
            return channel.to_json()
        if m := re.fullmatch(r"/v1/meters/([0-9a-f]{32}|[0-9a-f]{66})", path):
            mid = keys.meter_id(m[1]) if len(m[1]) == 66 else m[1]
            meter = state.meters.get(mid)
            if meter is None:
                raise NotFound(f"meter {mid} is not enrolled")
            return {"meter_id": mid, "pubkey": meter.pubkey, "owner": meter.owner}
        if m := re.fullmatch(r"/v1/markets/([^/]{1,64})", path):
            result = state.markets.get(urllib.parse.unquote(m[1]))
            if result is None:
                raise NotFound(f"no result for market {m[1]}")
            return dict(result)
        if m := re.fullmatch(r"/v1/listings/([^/]{1,64})", path):
            listing = state.listings.get(urllib.parse.unquote(m[1]))
            if listing is None:
                raise NotFound(f"no listing {m[1]}")
            return listing.to_json()
        if m := re.fullmatch(r"/v1/settlements/([^/]{1,64})", path):
            result = state.settlements.get(urllib.parse.unquote(m[1]))
            if result is None:
                raise NotFound(f"no settlement for period {m[1]}")
            return dict(result)
    raise NotFound(f"no route {path}")


Outcome = list[Receipt | TxRejected] | LedgerUnavailable


def _error_body(reason: str, detail: str, tx_id: str | None) -> bytes:
    return json.dumps({"error": {"reason": reason, "detail": detail, "tx_id": tx_id}}).encode()


def answer_one(outcome: Outcome) -> tuple[int, bytes]:
    """Status and body answering POST /v1/tx."""
    if isinstance(outcome, LedgerUnavailable):
        return HTTPStatus.SERVICE_UNAVAILABLE, _error_body("unavailable", str(outcome), None)
    result = outcome[0]
    if isinstance(result, TxRejected):
        status = (
            HTTPStatus.SERVICE_UNAVAILABLE
            if result.reason == "timeout"
            else HTTPStatus.UNPROCESSABLE_ENTITY
        )
        return status, _error_body(result.reason, result.detail, result.tx_id)
    return HTTPStatus.OK, result.json_text().encode()


def answer_batch(outcome: Outcome) -> tuple[int, bytes]:
    """Status and body answering POST /v1/txs: one result per tx, in order."""
    if isinstance(outcome, LedgerUnavailable):
        return HTTPStatus.SERVICE_UNAVAILABLE, _error_body("unavailable", str(outcome), None)
    results = [
        '{"error": ' + json.dumps({"reason": r.reason, "detail": r.detail, "tx_id": r.tx_id}) + "}"
        if isinstance(r, TxRejected)
        else r.json_text()
        for r in outcome
    ]
    return HTTPStatus.OK, ('{"results": [' + ", ".join(results) + "]}").encode()


def make_handler(node: Node, commit_timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(pooled_http.LeanRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sgrid-ledger/1"

        def log_message(self, format: str, *args: Any) -> None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, payload: dict[str, Any] | bytes) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_whole(status, data)

        def _error(self, status: int, reason: str, detail: str, tx_id: str | None = None) -> None:
            self._send(status, {"error": {"reason": reason, "detail": detail, "tx_id": tx_id}})

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/openapi.json":
                    self._send(HTTPStatus.OK, OPENAPI.read_bytes())
                else:
                    self._send(HTTPStatus.OK, _get(node, path))
            except NotFound as exc:
                self._error(HTTPStatus.NOT_FOUND, "not_found", str(exc))

        def _body(self) -> Any:
            """The JSON object of the body, or NO_BODY after answering 400 with the reason."""
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._error(
                    HTTPStatus.BAD_REQUEST, "malformed", f"body must be 1..{MAX_BODY} bytes"
                )
                return NO_BODY
            try:
                value = json.loads(self.rfile.read(length))
            except RecursionError:
                self._error(HTTPStatus.BAD_REQUEST, "malformed", "not JSON: nested too deeply")
                return NO_BODY
            except ValueError as exc:
                self._error(HTTPStatus.BAD_REQUEST, "malformed", f"not JSON: {exc}")
                return NO_BODY
            if not isinstance(value, dict):
                kind = type(value).__name__
                self._error(
                    HTTPStatus.BAD_REQUEST, "malformed", f"body must be an object, not {kind}"
                )
                return NO_BODY
            return value

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in ("/v1/tx", "/v1/txs"):
                self._error(HTTPStatus.NOT_FOUND, "not_found", f"no route {self.path}")
                return
            value = self._body()
            if value is NO_BODY:
                return
            if path == "/v1/txs":
                batch = value.get("txs") if set(value) == {"txs"} else None
                if not isinstance(batch, list) or not 1 <= len(batch) <= MAX_BATCH:
                    self._error(
                        HTTPStatus.BAD_REQUEST,
                        "malformed",
                        f"body is {{txs: [1..{MAX_BATCH} txs]}}",
                    )
                    return
                self._submit(batch, answer_batch)
            else:
                self._submit([value], answer_one)

        def _submit(
            self, values: list[Any], answer: Callable[[Outcome], tuple[int, bytes]]
        ) -> None:
            """Answered from the node's producer once the block is stored (no thread waits for
            it) when the node can (`submit_later`), else from this worker after waiting."""
            submit_later = getattr(node, "submit_later", None)
            if submit_later is None:
                try:
                    outcome: Outcome = node.submit_many(values, timeout=commit_timeout_s)
                except LedgerUnavailable as exc:
                    outcome = exc
                self.send_whole(*answer(outcome))
                return
            deferred = self.defer()

            def reply(outcome: Outcome) -> None:
                try:
                    status, body = answer(outcome)
                except Exception:  # a bug: answer 500 rather than leave the connection busy
                    log.exception("ledger: answering a submit failed")
                    status, body = (
                        500,
                        b'{"error": {"reason": "internal", "detail": "see the log"}}',
                    )
                deferred.send(status, body)

            submit_later(values, commit_timeout_s, reply)

    return Handler


def serve(
    node: Node,
    host: str,
    port: int,
    commit_timeout_s: float = 10.0,
    limits: pooled_http.Limits | None = None,
) -> pooled_http.PooledHTTPServer:
    """Bind and return the server (call serve_forever on it); port 0 picks a free port."""
    limits = limits or pooled_http.Limits(workers=default_http_workers(), max_body=2 * MAX_BODY)
    return pooled_http.PooledHTTPServer(
        (host, port), make_handler(node, commit_timeout_s), limits, name="ledger-http"
    )
