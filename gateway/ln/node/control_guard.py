"""Who may use the node's control API, and what a request must look like (docs/channels.md).

The credential is a bearer token in `<data dir>/control_token` (32 random bytes, hex), created
mode 0600 and owned by the service user: a process that can read it may spend the node's money,
any other local process (or a web page in a browser on the same host) cannot. Every request:

* `Authorization: Bearer <token>` (compared in constant time), else 401;
* no `Origin` header other than the API's own (browsers send one on cross-site requests), and a
  `Host` that is the loopback address the API listens on (DNS rebinding), else 403;
* a body, if any, of `Content-Type: application/json` (a browser's "simple" cross-site POST
  cannot send that without a CORS preflight, which this API never answers), else 415;
* a body that is one JSON object, at most 32 levels deep, else 400 with the reason.

Refusals are logged rate-limited (`RejectionLog` below); they change nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.ln.errors import LnError
from gateway.log_budget import SWEEP_AT, LogBudget

TOKEN_FILE = "control_token"
MAX_DEPTH = 32
log = logging.getLogger("gateway.ln.control")


class RequestRefused(LnError):
    """A control request refused before any handler ran; `status` is its HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def load_or_create_token(data_dir: Path) -> str:
    """The node's control token; created 0600 on first use. Refuses a file others can read."""
    path = data_dir / TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return read_token(path)


def read_token(path: Path) -> str:
    """A control token file's token (what clients send). Refuses a group/world-readable file."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise LnError(f"cannot read the control token {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LnError(f"control token {path} is readable by others: chmod 600 {path}")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise LnError(f"control token {path} is not 64 hex characters")
    return text


def _depth_ok(value: Any) -> bool:
    """No value nested deeper than MAX_DEPTH (the top level is depth 0). Level by level, so a
    body of thousands of payment requests is not walked one Python call per value."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0  # of the containers in `level`
    while level:
        children = [c for v in level for c in (v.values() if isinstance(v, dict) else v)]
        if children and depth + 1 > MAX_DEPTH:
            return False
        level = [c for c in children if isinstance(c, dict | list)]
        depth += 1
    return True


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty); RequestRefused(400) otherwise."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except RecursionError:
        raise RequestRefused(400, "body is not a JSON object: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RequestRefused(400, f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestRefused(400, f"body must be a JSON object, not {type(value).__name__}")
    if not _depth_ok(value):
        raise RequestRefused(400, f"body nested deeper than {MAX_DEPTH} levels")
    return value


def check_token(headers: dict[str, str], token: str) -> None:
    """RequestRefused(401) unless the request carries the credential (``headers``: lower-case)."""
    given = headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), token.encode()
    ):
        raise RequestRefused(401, "missing or wrong control token (Authorization: Bearer ...)")


def check_request(
    headers: dict[str, str], raw: bytes, token: str, own_hosts: tuple[str, ...]
) -> dict[str, Any]:
    """Check credential, origin, host and content type, then parse the body (module doc).

    ``headers``: lower-case names; ``own_hosts``: the Host values this API answers to."""
    check_token(headers, token)
    origin = headers.get("origin")
    if origin is not None and origin.removeprefix("http://") not in own_hosts:
        raise RequestRefused(403, f"foreign origin {origin[:80]!r}")
    if headers.get("host", "") not in own_hosts:
        raise RequestRefused(403, f"host {headers.get('host', '')[:80]!r} is not this API")
    if raw:
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise RequestRefused(415, f"content type {ctype[:60]!r}: only application/json")
    return parse_body(raw)


class RejectionLog:
    """At most `burst` log lines per reason per `window_s` (gateway.log_budget); the rest are
    counted, and said by the reason's next line. Reasons carry request text, so ended windows
    are swept: a line also says the held refusals of other reasons that the sweep dropped."""

    def __init__(
        self,
        burst: int = 10,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sweep_at: int = SWEEP_AT,
    ) -> None:
        self._budget = LogBudget(burst, window_s, clock, sweep_at)

    @property
    def total(self) -> int:
        return self._budget.total

    def log(self, status: int, reason: str, peer: str) -> bool:
        admitted = self._budget.admit(f"{status} {reason[:40]}")
        if admitted is None:
            return False
        more = admitted.unlogged("refusals of other reasons")
        log.warning("control API refused a request from %s: %d %s%s", peer, status, reason, more)
        return True


_U63 = (0, 2**63 - 1)
# the body each route takes: field -> (type, lo, hi) for numbers, (type,) otherwise; list
# fields name their items' type. Routes not listed take any object (their handler checks it).
FIELDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "POST /connect": {"host": ("str",), "port": ("int", 1, 65535), "node_id": ("hex",)},
    "POST /open": {"node_id": ("hex",), "amount_msat": ("int", *_U63), "push_msat": ("int", *_U63)},
    "POST /close": {"channel_id": ("hex",), "force": ("bool",)},
    "POST /invoice": {
        "amount_msat": ("int", 1, 2**63 - 1),
        "start": ("int", 0, 2**32 - 1),
        "end": ("int", 0, 2**32 - 1),
        "kwh": ("num",),
        "kw": ("list", "num"),
        "step_s": ("int", 1, 2**32 - 1),
        "node": ("str",),
        "count": ("int", 1, 1000),
    },
    "POST /pay": {
        "invoice": ("str",),
        "invoices": ("list", "str"),
        "requests": ("list", "request"),
        "timeout": ("num",),
    },
    "POST /payment": {"payment_hash": ("hex",)},
    "POST /offer": {"invoice": ("str",), "memo": ("str",)},
    "POST /tick": {},
}


_HEX = re.compile("[0-9a-f]*")


def _is(kind: str, v: Any) -> bool:
    if kind == "str":
        return isinstance(v, str)
    if kind == "hex":
        return isinstance(v, str) and len(v) % 2 == 0 and _HEX.fullmatch(v) is not None
    if kind == "int":
        return type(v) is int
    if kind == "num":
        return type(v) in (int, float) and v == v and abs(v) < 1e15  # no NaN, no infinities
    if kind == "bool":
        return type(v) is bool
    if kind == "request":  # [payee hex, payment hash hex, amount msat, payment secret hex?]
        return (
            isinstance(v, list)
            and len(v) in (3, 4)
            and _is("hex", v[0])
            and _is("hex", v[1])
            and type(v[2]) is int
            and 1 <= v[2] < 2**63
            and (len(v) == 3 or _is("hex", v[3]))
        )
    return False


def check_fields(route: str, body: dict[str, Any]) -> None:
    """Refuse (400) a body with a field the route does not take or a value of the wrong type."""
    spec = FIELDS.get(route)
    if spec is None:
        return
    for name, value in body.items():
        if name not in spec:
            raise RequestRefused(400, f"{route}: unknown field {name[:40]!r}")
        kind, *rest = spec[name]
        if kind == "list":
            if not isinstance(value, list) or len(value) > 10_000:
                raise RequestRefused(400, f"{name}: must be a list of at most 10000 items")
            if not all(_is(rest[0], item) for item in value):
                raise RequestRefused(400, f"{name}: every item must be a {rest[0]}")
        elif not _is(kind, value) or (rest and not rest[0] <= value <= rest[1]):
            bounds = f" in {rest[0]}..{rest[1]}" if rest else ""
            raise RequestRefused(400, f"{name}: must be a {kind}{bounds}")
