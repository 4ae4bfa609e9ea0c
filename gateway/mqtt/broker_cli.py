"""`sgrid broker ...`: the site broker's accounts (deploy/mosquitto/, docs/gateway.md "Broker")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from gateway.errors import GatewayError

DEFAULT_DIR = "/etc/mosquitto/sgrid"

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="/etc/sgrid/gateway.toml",
    show_default=True,
    help="Gateway TOML configuration (for the site name and the gateway's MQTT account).",
)
_dir_option = click.option(
    "--dir",
    "broker_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Where the broker's password file `passwd` and ACL file `acl` live.",
)
_reload_option = click.option(
    "--reload/--no-reload",
    default=False,
    help="Run `systemctl reload mosquitto` afterwards (it re-reads passwd and acl on SIGHUP).",
)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _reload(reload: bool) -> None:
    if reload:
        done = subprocess.run(["systemctl", "reload", "mosquitto"], capture_output=True, text=True)
        if done.returncode != 0:
            _fail(GatewayError(f"systemctl reload mosquitto: {done.stderr.strip()}"))


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


@click.group("broker")
def broker() -> None:
    """The site's mosquitto broker: one account per meter, the gateway's account, their ACL."""


@broker.command("add-meter")
@_config_option
@_dir_option
@click.option(
    "--meter", required=True, help="The meter's public key (66 hex) or meter id (32 hex)."
)
@click.option(
    "--password-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the new password here (0600) instead of printing it; it goes into the meter's "
    "config as broker_password (tools.provision).",
)
@_reload_option
def add_meter(
    config_path: Path, broker_dir: Path, meter: str, password_out: Path | None, reload: bool
) -> None:
    """Create (or reset) a meter's broker account and its ACL block. Run it at enrolment,
    next to `sgrid gateway enroll-meter`; the meter's broker_user is its meter id."""
    from gateway.config import load_config
    from gateway.mqtt import accounts
    from sgcore.reading import meter_id_from_pubkey

    try:
        cfg = load_config(config_path)
        text = meter.strip().lower()
        if len(text) == 66:
            text = meter_id_from_pubkey(bytes.fromhex(text)).hex()
        block = accounts.meter_acl(cfg.site, text)
        password = accounts.new_password()
        broker_dir.mkdir(parents=True, exist_ok=True)
        accounts.add_password(broker_dir / "passwd", text, password)
        accounts.write_acl(broker_dir / "acl", block)
    except (GatewayError, ValueError) as exc:
        _fail(exc)
    if password_out is not None:
        _write_secret(password_out, password)
        click.echo(f"meter account {text}: password in {password_out}")
    else:
        click.echo(f"meter account {text} password {password}")
    _reload(reload)


@broker.command("add-gateway")
@_config_option
@_dir_option
@_reload_option
def add_gateway(config_path: Path, broker_dir: Path, reload: bool) -> None:
    """Create the gateway's broker account (mqtt.username, default sgrid-gateway) and ACL block.
    The password is read from mqtt.password_file, or created there (0600) when it is missing."""
    from gateway.config import load_config
    from gateway.mqtt import accounts

    try:
        cfg = load_config(config_path)
        user = cfg.mqtt.username or accounts.GATEWAY_USER
        if not cfg.mqtt.password_file:
            raise GatewayError("mqtt.password_file: set it, the gateway account needs a password")
        secret = Path(cfg.mqtt.password_file)  # resolved against the config file's directory
        if secret.exists():
            password = secret.read_text().strip()
        else:
            password = accounts.new_password()
            _write_secret(secret, password)
        block = accounts.gateway_acl(cfg.site, user, cfg.homeassistant.discovery_prefix)
        broker_dir.mkdir(parents=True, exist_ok=True)
        accounts.add_password(broker_dir / "passwd", user, password)
        accounts.write_acl(broker_dir / "acl", block)
    except (GatewayError, OSError) as exc:
        _fail(exc)
    click.echo(f"gateway account {user}: password in {secret}")
    _reload(reload)
