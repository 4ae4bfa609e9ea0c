"""The ledger node's TOML configuration (see docs/ledger.md for an example)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.ledger import keys
from gateway.ledger.chain import GenesisParams
from gateway.ledger.errors import LedgerConfigError


def default_http_workers() -> int:
    """Twice the cores, at least 4: enough to verify on every core and serve reads meanwhile
    (no worker waits for a block: the producer or applier answers). A larger pool cost more:
    with 32 workers, each of 16 clients' requests had a thread of its own, all of them taking
    the GIL from one another (3-6 context switches per tx against ~1, ~15 % more CPU per tx in
    bench_ledger); with a few, a busy worker takes the next request from the queue itself."""
    return max(4, 2 * (os.cpu_count() or 2))


@dataclass(frozen=True)
class LedgerConfig:
    name: str
    operator: str
    validator_key_file: Path
    genesis_time_ms: int
    db: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 8720
    max_block_txs: int = 1000
    idle_block_ms: int = 1000
    commit_timeout_s: float = 10.0
    etcd: tuple[str, ...] = ()
    etcd_prefix: str = "/sgrid/ledger"
    cut_interval_ms: int = 20
    http_workers: int = field(default_factory=default_http_workers)
    max_connections: int = 512
    idle_timeout_s: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def replicated(self) -> bool:
        return bool(self.etcd)

    def genesis(self) -> GenesisParams:
        return GenesisParams(self.name, self.operator, self.genesis_time_ms)

    def validator_key(self) -> keys.SigningKey:
        try:
            return keys.SigningKey.load(self.validator_key_file)
        except (OSError, ValueError) as exc:
            raise LedgerConfigError(f"validator key {self.validator_key_file}: {exc}") from exc

    def validator_pubkey(self) -> str:
        """From `validator` in the config if given (verify needs no private key), else the key file."""
        given = self.extra.get("validator")
        return str(given) if given else self.validator_key().pubkey


def _positive(section: dict[str, Any], key: str, default: float) -> Any:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise LedgerConfigError(f"ledger.{key} must be a positive number, not {value!r}")
    return type(default)(value)


def load(path: Path) -> LedgerConfig:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LedgerConfigError(f"{path}: {exc}") from exc
    base = Path(path).resolve().parent
    section = raw.get("ledger", {})
    repl = raw.get("replication", {})
    try:
        host, _, port = str(section.get("listen", "127.0.0.1:8720")).rpartition(":")
        operator = str(section["operator"])
        if not keys.is_pubkey(operator):
            raise LedgerConfigError(
                "ledger.operator must be a compressed secp256k1 public key (hex)"
            )
        return LedgerConfig(
            name=str(section["name"]),
            operator=operator,
            validator_key_file=base / str(section.get("validator_key_file", "validator.key")),
            genesis_time_ms=int(section["genesis_time_ms"]),
            db=base / str(section.get("db", "ledger.sqlite")),
            listen_host=host or "127.0.0.1",
            listen_port=int(port),
            max_block_txs=int(section.get("max_block_txs", 1000)),
            idle_block_ms=int(section.get("idle_block_ms", 1000)),
            commit_timeout_s=float(section.get("commit_timeout_s", 10.0)),
            etcd=tuple(str(e) for e in repl.get("etcd", ())),
            etcd_prefix=str(repl.get("prefix", "/sgrid/ledger")),
            cut_interval_ms=int(repl.get("cut_interval_ms", 20)),
            http_workers=_positive(section, "http_workers", default_http_workers()),
            max_connections=_positive(section, "max_connections", 512),
            idle_timeout_s=float(_positive(section, "idle_timeout_s", 30.0)),
            extra={k: v for k, v in section.items() if k == "validator"},
        )
    except KeyError as exc:
        raise LedgerConfigError(f"{path}: missing ledger.{exc.args[0]}") from exc
    except ValueError as exc:
        raise LedgerConfigError(f"{path}: {exc}") from exc
