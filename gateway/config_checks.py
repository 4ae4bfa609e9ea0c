"""Checks of configuration values: each returns an error text, or None when the value is fine.

Shared by every section of the gateway config (gateway/config.py, gateway/config_grid.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]


def int_in(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer in {lo}..{hi}, got {v!r}"
        return None

    return check


def num_in(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            return f"must be a number in {lo:g}..{hi:g}, got {v!r}"
        return None

    return check


def string(pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"must be a string, got {v!r}"
        if choices and v not in choices:
            return "must be one of {}, got {!r}".format(", ".join(choices), v)
        if pattern is not None and not pattern.match(v):
            return f"must match {pattern.pattern}, got {v!r}"
        return None

    return check


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def pin(v: Any) -> str | None:
    return int_in(0, 27)(v)


def check_table(
    where: str, table: Any, schema: dict[str, tuple[Check, bool]], problems: list[str]
) -> dict[str, Any]:
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table")
        return {}
    for key in table:
        if key not in schema:
            problems.append(f"{where}.{key}: unknown key")
    good: dict[str, Any] = {}
    for key, (check, required) in schema.items():
        if key not in table:
            if required:
                problems.append(f"{where}.{key}: missing (required)")
            continue
        error = check(table[key])
        if error:
            problems.append(f"{where}.{key}: {error}")
        else:
            good[key] = table[key]
    return good


def host(v: Any) -> str | None:
    """A hostname or an IP address: never empty (an empty host makes connect() fail at run time)."""
    if not isinstance(v, str) or not v.strip():
        return f"must be a host name or IP address, got {v!r}"
    try:
        ipaddress.ip_address(v)
        return None
    except ValueError:
        pass
    if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?", v):  # fmt: skip
        return f"must be a host name or IP address, got {v!r}"
    return None


def hex_bytes(nbytes: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str) or not re.fullmatch(f"[0-9a-f]{{{2 * nbytes}}}", v):
            return f"must be {2 * nbytes} lowercase hex characters, got {v!r}"
        return None

    return check


def pubkey(v: Any) -> str | None:
    if hex_bytes(33)(v) is not None or v[:2] not in ("02", "03"):
        return f"must be a compressed secp256k1 public key (66 hex, 02.. or 03..), got {v!r}"
    return None


def url(v: Any) -> str | None:
    if not isinstance(v, str) or not re.fullmatch(r"https?://[^\s/:]+(:\d{1,5})?(/\S*)?", v):
        return f"must be an http:// or https:// URL, got {v!r}"
    return None
