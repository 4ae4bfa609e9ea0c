"""Checks of the configuration against the machine: what `run` would refuse, `check-config` says.

The TOML schema (gateway/config.py) checks values; these check what the values point at: the
password file can be read, the state directory can be written, and the node key on disk is the
one the topology names for this node. Each problem names its key, as config errors do.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config import GatewayConfig


def _writable_dir(path: Path) -> bool:
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def node_id_on_disk(cfg: GatewayConfig) -> str | None:
    """The node's public key if its seed exists (None before the first run)."""
    from gateway.ln.node import keys

    if not (cfg.grid.node.data_dir / keys.SEED_FILE).exists():
        return None
    return keys.load_or_create(cfg.grid.node.data_dir).node_id.hex()


def problems(cfg: GatewayConfig, create_node_key: bool = False) -> list[str]:
    out: list[str] = []
    if cfg.mqtt.password_file:
        pw = Path(cfg.mqtt.password_file)
        if not pw.is_file() or not os.access(pw, os.R_OK):
            out.append(f"mqtt.password_file: {pw} cannot be read")
    if not _writable_dir(cfg.state_dir):
        out.append(f"gateway.state_dir: {cfg.state_dir} cannot be created or written")
    node = cfg.grid.node
    if node.enabled:
        if not _writable_dir(node.data_dir):
            out.append(f"node.data_dir: {node.data_dir} cannot be created or written")
        elif create_node_key:
            from gateway.ln.node import keys

            keys.load_or_create(node.data_dir)
        me = cfg.grid.topology.node(node.name)
        try:
            mine = node_id_on_disk(cfg)
        except Exception as exc:  # noqa: BLE001 - a damaged seed file: say which
            out.append(f"node.data_dir: the node seed cannot be read ({exc})")
            mine = None
        if me is not None and mine is not None and me.node_id != mine:
            out.append(
                f"topology.node {me.name!r}.node_id: {me.node_id[:16]}... but this node's key "
                f"(in {node.data_dir}) is {mine[:16]}... (`sgrid gateway node-id`)"
            )
    return out
