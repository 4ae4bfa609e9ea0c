"""The ledger package's errors, under `gateway.errors.GatewayError`."""

from __future__ import annotations

from gateway.errors import GatewayError


class LedgerError(GatewayError):
    """Base of every error raised by gateway.ledger."""


class TxRejected(LedgerError):
    """A transaction was refused. `reason` is a stable code (docs/ledger-api.md, "Rejections")."""

    def __init__(self, reason: str, detail: str = "", tx_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.tx_id = tx_id


class ChainInvalid(LedgerError):
    """Stored history does not verify; `height` is the first bad block."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block {height}: {reason}")
        self.height = height
        self.reason = reason


class ProofInvalid(LedgerError):
    """An inclusion proof does not check out."""


class StorageError(LedgerError):
    """The SQLite store is unusable (wrong chain, corrupt schema, ...)."""


class LedgerConfigError(LedgerError):
    """The ledger configuration file is missing something or inconsistent."""


class LedgerUnavailable(LedgerError):
    """The ledger node (or etcd) could not be reached or did not answer in time."""


class ReplicationError(LedgerError):
    """The etcd-backed ordered log misbehaved."""


class NotFound(LedgerError):
    """The ledger has no such object: transaction, block, account, channel, meter or route
    (HTTP 404 on the API)."""
