"""A small etcd v3 client over its JSON gRPC-gateway (`/v3/kv/txn`, `/v3/kv/range`, `/v3/watch`).

Only what the replicated ledger needs: create-only puts (idempotent appends to the ordered log)
and a watch that yields every created key in revision order, resuming on another member when
one fails. Keys and values are base64 on the wire; int64 fields arrive as strings.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.ledger.errors import ReplicationError

log = logging.getLogger(__name__)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with `prefix`."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        base64.b64decode(raw.get("key", "")),
        base64.b64decode(raw.get("value", "")),
        int(raw.get("create_revision", 0)),
    )


class EtcdClient:
    def __init__(self, endpoints: Sequence[str], timeout: float = 3.0, attempts: int = 20) -> None:
        if not endpoints:
            raise ReplicationError("no etcd endpoints configured")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.attempts = attempts
        self._next = 0

    def _endpoint(self) -> str:
        return self.endpoints[self._next % len(self.endpoints)]

    def _rotate(self) -> None:
        self._next += 1

    def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to one member; on failure try the next (with backoff) up to `attempts` times."""
        last = ""
        for attempt in range(self.attempts):
            url = self._endpoint() + path
            request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return dict(json.loads(response.read()))
            except urllib.error.HTTPError as exc:
                last = f"{url}: HTTP {exc.code} {exc.read()[:200]!r}"
            except (OSError, ValueError) as exc:
                last = f"{url}: {exc}"
            log.debug("etcd call failed (%s), trying another member", last)
            self._rotate()
            if attempt >= len(self.endpoints) - 1:
                time.sleep(min(0.05 * attempt, 0.5))
        raise ReplicationError(f"etcd unreachable: {last}")

    def create(self, key: bytes, value: bytes) -> tuple[bool, int]:
        """Put `key` only if absent. Returns (created now, the key's create_revision)."""
        k = _b64(key)
        answer = self.call(
            "/v3/kv/txn",
            {
                "compare": [{"target": "CREATE", "key": k, "create_revision": "0"}],
                "success": [{"request_put": {"key": k, "value": _b64(value)}}],
                "failure": [{"request_range": {"key": k}}],
            },
        )
        if answer.get("succeeded"):
            return True, int(answer["header"]["revision"])
        kvs = answer["responses"][0]["response_range"].get("kvs", [])
        if not kvs:
            raise ReplicationError(f"create of {key!r} neither succeeded nor found the key")
        return False, _kv(kvs[0]).create_revision

    def get(self, key: bytes) -> KeyValue | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def watch(self, prefix: bytes, start_revision: int, stop: Any = None) -> Iterator[KeyValue]:
        """Every key created under `prefix` from `start_revision`, in revision order, forever.

        Reconnects to the next member when a stream breaks, resuming after the last revision seen.
        `stop` (an Event) ends the iteration at the next reconnect or event.
        """
        next_rev = start_revision
        failures = 0
        while stop is None or not stop.is_set():
            url = self._endpoint() + "/v3/watch"
            body = {
                "create_request": {
                    "key": _b64(prefix),
                    "range_end": _b64(prefix_end(prefix)),
                    "start_revision": str(next_rev),
                    "progress_notify": True,
                }
            }
            request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout * 4) as stream:
                    for line in stream:
                        if stop is not None and stop.is_set():
                            return
                        message = json.loads(line)
                        if "error" in message:
                            raise ReplicationError(f"watch error: {message['error']}")
                        result = message.get("result", {})
                        if result.get("canceled"):
                            raise ReplicationError(f"watch canceled: {result.get('cancel_reason')}")
                        failures = 0
                        for event in result.get("events", []):
                            if event.get("type") == "DELETE":
                                continue
                            kv = _kv(event["kv"])
                            if kv.create_revision >= next_rev:
                                next_rev = kv.create_revision + 1
                                yield kv
            except (OSError, ValueError, ReplicationError) as exc:
                failures += 1
                log.info("etcd watch on %s ended (%s); resuming at revision %d", url, exc, next_rev)
            self._rotate()
            time.sleep(min(0.05 * failures, 0.5))
