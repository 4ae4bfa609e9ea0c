"""`sgrid gateway ...`: run the gateway service, check its config, enroll meters, show the site key."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.errors import GatewayError

DEFAULT_CONFIG = "/etc/sgrid/gateway.toml"

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Gateway TOML configuration.",
)


def _load(config_path: Path, preflight: bool = False, create_node_key: bool = False):
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.service import preflight as pf

    try:
        cfg = load_config(config_path)
        if preflight and (found := pf.problems(cfg, create_node_key)):
            raise ConfigError(found)
        return cfg
    except GatewayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group("gateway")
def gateway() -> None:
    """The site gateway: verifies, stores and acknowledges meter readings; polls Modbus meters."""


@gateway.command("run")
@_config_option
def run(config_path: Path) -> None:
    """Run the gateway service (what the systemd unit starts)."""
    from gateway.service.app import run_gateway

    cfg = _load(config_path, preflight=True, create_node_key=True)
    try:
        run_gateway(cfg)
    except GatewayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@gateway.command("check-config")
@_config_option
def check_config(config_path: Path) -> None:
    """Validate the configuration and exit (0 when valid, 2 with every problem listed).

    Refuses every value `run` would refuse, naming its key."""
    cfg = _load(config_path, preflight=True)
    node = cfg.grid.node
    grid = (
        f", grid node {node.name!r} on {node.listen}:{node.port}, ledger {cfg.grid.ledger.url}"
        if node.enabled
        else ""
    )
    click.echo(
        f"{config_path}: ok (site {cfg.site}, store {cfg.database}, "
        f"{len(cfg.buses)} Modbus buses, {len(cfg.devices)} Modbus devices{grid})"
    )


@gateway.command("enroll-meter")
@_config_option
@click.option("--pubkey", required=True, help="Meter public key: 66 hex characters (compressed).")
@click.option("--label", default="", help="A name for the meter, e.g. house-3.")
@click.option(
    "--anchor-seq",
    type=click.IntRange(0, 0xFFFFFFFF),
    default=0,
    show_default=True,
    help="First sequence number to accept (0: the meter's chain must start at its first record).",
)
def enroll_meter(config_path: Path, pubkey: str, label: str, anchor_seq: int) -> None:
    """Register a meter's public key (from provisioning). Safe to repeat; works on a live gateway."""
    from gateway.crypto import MeterVerifier
    from gateway.ingest.store import ReadingStore

    cfg = _load(config_path)
    try:
        key = bytes.fromhex(pubkey.strip())
        MeterVerifier(key)  # validates the point
        store = ReadingStore(cfg.database)
        try:
            row = store.enroll(key, label, anchor_seq)
        finally:
            store.close()
    except ValueError:
        click.echo("error: --pubkey is not hex", err=True)
        sys.exit(2)
    except GatewayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(
        f"enrolled meter {row.meter_id.hex()} ({row.label or 'no label'}) from seq {row.anchor_seq}"
    )


@gateway.command("site-key")
@_config_option
def site_key(config_path: Path) -> None:
    """Print the gateway's site public key (created on first use); meters verify acks with it."""
    from gateway.crypto import SiteKey

    cfg = _load(config_path)
    try:
        key = SiteKey.load_or_create(cfg.site_key_file)
    except GatewayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(key.pubkey.hex())


@gateway.command("node-id")
@_config_option
def node_id(config_path: Path) -> None:
    """Print this grid node's public key (created on first use): the operator enrols it on the
    ledger (`sgrid ledger enroll`) and peers list it in [[topology.node]]."""
    from gateway.ln.node import keys

    cfg = _load(config_path)
    try:
        click.echo(keys.load_or_create(cfg.grid.node.data_dir).node_id.hex())
    except (OSError, GatewayError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@gateway.command("proof")
@_config_option
@click.option("--meter", required=True, help="Meter id (32 hex) or its label.")
@click.option("--seq", type=click.IntRange(0, 0xFFFFFFFF), required=True, help="Reading seq.")
def proof(config_path: Path, meter: str, seq: int) -> None:
    """Print the inclusion proof of one stored reading in an anchored batch (JSON).

    Check it offline with `sgrid ledger verify-proof PROOF --validator <key>`."""
    from gateway.service.proof_cli import print_proof

    print_proof(_load(config_path), meter, seq)
