"""A small etcd v3 client over its JSON gRPC-gateway (`/v3/kv/txn`, `/v3/kv/range`, `/v3/watch`).

Only what the replicated ledger needs: create-only puts (idempotent appends to the ordered log),
several of them in one txn, and a watch that yields every created key in revision order, resuming on another member when
one fails. Keys and values are base64 on the wire; int64 fields arrive as strings.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
import urllib.parse
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
        self._local = threading.local()  # per thread: endpoint -> keep-alive connection

    def _endpoint(self) -> str:
        return self.endpoints[self._next % len(self.endpoints)]

    def _rotate(self) -> None:
        self._next += 1

    def _post(self, endpoint: str, path: str, body: bytes) -> tuple[int, bytes]:
        """One POST on this thread's keep-alive connection to `endpoint` (opened on first use).

        A kept connection the member closed meanwhile fails before the request is read: that
        one is retried once on a new connection."""
        conns: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("c", {})
        for fresh in (False, True):
            conn = conns.get(endpoint)
            reused = conn is not None and not fresh
            if conn is None or fresh:
                if conn is not None:
                    conn.close()
                parts = urllib.parse.urlsplit(endpoint)
                conn = conns[endpoint] = http.client.HTTPConnection(
                    parts.netloc, timeout=self.timeout
                )
            try:
                target = urllib.parse.urlsplit(endpoint).path.rstrip("/") + path
                conn.request("POST", target, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conns.pop(endpoint, None)
                conn.close()
                if reused:
                    continue
                raise
            except BaseException:
                conns.pop(endpoint, None)
                conn.close()
                raise
            if response.will_close:
                conns.pop(endpoint, None)
                conn.close()
            return response.status, data
        raise AssertionError("unreachable")

    def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to one member; on failure try the next (with backoff) up to `attempts` times."""
        last = ""
        body = json.dumps(payload).encode()
        for attempt in range(self.attempts):
            endpoint = self._endpoint()
            url = endpoint + path
            try:
                status, data = self._post(endpoint, path, body)
                if status == 200:
                    return dict(json.loads(data))
                last = f"{url}: HTTP {status} {data[:200]!r}"
            except (OSError, ValueError, http.client.HTTPException) as exc:
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

    def create_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[bool]:
        """Put each (key, value) only if its key is absent, in one txn (one raft entry, one
        revision; the keys' watch events come in this order). If any key exists already (a
        retried write, another replica's cut), each is created on its own instead. Returns, per
        item, whether it was created now."""
        if len(items) == 1:
            return [self.create(*items[0])[0]]
        keys = [_b64(k) for k, _ in items]
        answer = self.call(
            "/v3/kv/txn",
            {
                "compare": [{"target": "CREATE", "key": k, "create_revision": "0"} for k in keys],
                "success": [
                    {"request_put": {"key": k, "value": _b64(v)}}
                    for k, (_, v) in zip(keys, items, strict=True)
                ],
            },
        )
        if answer.get("succeeded"):
            return [True] * len(items)
        return [self.create(k, v)[0] for k, v in items]

    def get(self, key: bytes) -> KeyValue | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def watch(self, prefix: bytes, start_revision: int, stop: Any = None) -> Iterator[KeyValue]:
        """Every key created under `prefix` from `start_revision`, in revision order, forever.

        Reconnects to the next member when a stream breaks, resuming after the last revision seen.
        `stop` (an Event) ends the iteration at the next reconnect or event.
        """
        # one write may create many keys at one revision: remember how many events of the last
        # revision were yielded, so a resumed stream skips exactly those
        last_rev, yielded_at_last = start_revision - 1, 0
        failures = 0
        while stop is None or not stop.is_set():
            url = self._endpoint() + "/v3/watch"
            resume = last_rev if yielded_at_last else last_rev + 1
            skip = yielded_at_last
            body = {
                "create_request": {
                    "key": _b64(prefix),
                    "range_end": _b64(prefix_end(prefix)),
                    "start_revision": str(resume),
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
                            if kv.create_revision < resume:
                                continue  # an update of an older key (never written here)
                            if kv.create_revision == resume and skip:
                                skip -= 1  # yielded before the stream broke
                                continue
                            if kv.create_revision == last_rev:
                                yielded_at_last += 1
                            else:
                                last_rev, yielded_at_last = kv.create_revision, 1
                            yield kv
            except (OSError, ValueError, ReplicationError) as exc:
                failures += 1
                log.info(
                    "etcd watch on %s ended (%s); resuming after revision %d", url, exc, last_rev
                )
            self._rotate()
            time.sleep(min(0.05 * failures, 0.5))
