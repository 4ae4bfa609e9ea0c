"""Broker accounts of a site: the mosquitto ACL blocks and password entries (deploy/mosquitto/).

One account per meter (user name = its meter id, 32 hex) that may publish only its own
reading/status/event topics and read only its own ack/cmd/token topics, and one gateway account
that may do the gateway's side of docs/mqtt-topics.md. Topics come from `sgcore.topics`, the one
copy of the scheme. The ACL text functions are pure; `add_password` runs `mosquitto_passwd`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from gateway.errors import GatewayError
from sgcore import ota_bundle, topics

GATEWAY_USER = "sgrid-gateway"
METER_PUBLISHES = ("reading", "status", "event")
METER_READS = ("ack", "cmd", "token")
GATEWAY_READS = ("reading", "status", "event")
GATEWAY_WRITES = ("ack", "cmd", "token", "state")
_USER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class BrokerAccountError(GatewayError):
    """A broker account cannot be written (bad name, mosquitto_passwd missing or failing)."""


def meter_acl(site: str, meter_hex: str) -> str:
    """The ACL block of one meter's account."""
    if not topics.is_meter_hex(meter_hex):
        raise BrokerAccountError(f"meter id must be 32 lowercase hex characters, got {meter_hex!r}")
    lines = [f"user {meter_hex}"]
    lines += [
        f"topic write {topics.meter_topic(site, meter_hex, leaf)}" for leaf in METER_PUBLISHES
    ]
    lines += [f"topic read {topics.meter_topic(site, meter_hex, leaf)}" for leaf in METER_READS]
    lines.append(f"topic read {ota_bundle.ota_filter(site)}")  # signed firmware updates
    return "\n".join(lines) + "\n"


def gateway_acl(
    site: str, user: str = GATEWAY_USER, discovery_prefix: str = "homeassistant"
) -> str:
    """The ACL block of the gateway's account: every meter's uplink in, acks/commands/tokens out."""
    check_user(user)
    lines = [f"user {user}"]
    lines += [f"topic read {topics.meter_topic(site, '+', leaf)}" for leaf in GATEWAY_READS]
    lines += [f"topic write {topics.meter_topic(site, '+', leaf)}" for leaf in GATEWAY_WRITES]
    lines += [
        f"topic readwrite {topics.gateway_status_topic(site)}",
        f"topic write {topics.modbus_state_topic(site, '+')}",
        f"topic write {discovery_prefix}/#",
        f"topic write {ota_bundle.ota_filter(site)}",  # sgrid ota publish (docs/ota.md)
    ]
    return "\n".join(lines) + "\n"


def check_user(user: str) -> None:
    if not _USER_RE.match(user):
        raise BrokerAccountError(f"broker user name must match {_USER_RE.pattern}, got {user!r}")


def upsert_block(acl_text: str, block: str) -> str:
    """`acl_text` with the block of `block`'s user replaced (or appended): idempotent."""
    user_line = block.splitlines()[0]
    kept: list[str] = []
    skipping = False
    for line in acl_text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("user ", "pattern ")):
            skipping = stripped == user_line
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    head = "\n".join(kept) + "\n\n" if kept else ""
    return head + block


def write_acl(acl_file: Path, block: str) -> None:
    """Insert or replace `block` in the ACL file atomically (mode 0640)."""
    old = acl_file.read_text() if acl_file.exists() else ""
    tmp = acl_file.with_name(acl_file.name + ".tmp")
    tmp.write_text(upsert_block(old, block))
    _restrict(tmp)
    os.replace(tmp, acl_file)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def add_password(passwd_file: Path, user: str, password: str) -> None:
    """Set `user`'s password in a mosquitto password file (hashed by `mosquitto_passwd -b`)."""
    check_user(user)
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        raise BrokerAccountError("mosquitto_passwd not found (apt-get install mosquitto)")
    if not passwd_file.exists():
        passwd_file.touch(mode=0o600)
    done = subprocess.run(
        [exe, "-b", str(passwd_file), user, password], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise BrokerAccountError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout}")
    _restrict(passwd_file)


def _restrict(path: Path) -> None:
    """Readable by root and the mosquitto group only (mosquitto reads them after dropping root)."""
    os.chmod(path, 0o640)
    try:
        shutil.chown(path, group="mosquitto")
    except (LookupError, PermissionError):
        pass  # no mosquitto group here (tests) or not root: the mode alone is still private
