"""Provision a meter: write its config.json (validated by the firmware's own rules) and read its
public key back.

    sgrid provision --flash run/meter1/flash --site demo --broker 127.0.0.1:1883 \\
        --issuer-pubkey $(sgrid gateway site-key --config gateway.toml) [--set interval_s=900 ...]
    sgrid provision --port /dev/ttyUSB0 --site demo --broker 192.168.1.5:8883 \\
        --issuer-pubkey 02... --release-pubkey 03...      # a board on its serial REPL (mpremote)
    (`python -m tools.provision ...` is the same command)

The meter makes its own key at first boot: the private key never leaves it. Over the REPL,
provisioning reads the public key back (booting the meter once if it has no key yet) and prints
it with the command that enrolls it at the gateway. `--release-pubkey` is the key that signs
firmware updates (`sgrid ota keygen`); a meter without one refuses every update.

Next to config.json it writes issuer.tbl, the fixed-base table of the issuer's key
(sgcore.secp256k1_keytable, 88 KB), computed here with the firmware's own builder: with it the
meter verifies a token or an ack at about a third of the cost (docs/crypto.md).
"""

from __future__ import annotations

import binascii
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tools.errors import FlashError, ProvisionError
from tools.mpremote_run import check_port, run_mpremote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "firmware" / "lib"))
import config as meter_config  # noqa: E402  (the firmware's module: one set of rules)

from sgcore.secp256k1_keytable import DEFAULT_PATH as KEY_TABLE  # noqa: E402

# keystore.py's key.bin: b"SGK2" | private key (32) | public key (33) | crc32. Only the public
# part is printed; the private key stays on the board.
READ_PUBKEY = (
    "import binascii\n"
    "try:\n"
    " d = open('key.bin', 'rb').read()\n"
    "except OSError:\n"
    " d = b''\n"
    "print('PUBKEY', binascii.hexlify(d[36:69]).decode() if len(d) == 73 and d[:4] == b'SGK2' "
    "else 'none')\n"
)
KEY_WAIT_S = 60.0


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare string


def build_config(
    site: str,
    broker: str,
    issuer_pubkey: str,
    settings: list[str],
    release_pubkey: str | None = None,
) -> dict:
    host, sep, port = broker.rpartition(":")
    if not sep:
        host, port = broker, ""
    raw: dict[str, object] = {
        "site": site,
        "broker_host": host,
        "issuer_pubkey": issuer_pubkey.lower(),
    }
    if release_pubkey:
        raw["release_pubkey"] = release_pubkey.lower()
    if port:
        if not port.isdigit():
            raise ProvisionError(f"--broker: port must be a number, got {port!r}")
        raw["broker_port"] = int(port)
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise ProvisionError(f"--set takes KEY=VALUE, got {item!r}")
        raw[key] = _value(value)
    problems: list[str] = []
    meter_config.validate(raw, log=problems.append)
    errors = [p for p in problems if p.startswith("config error")]
    unknown = [p for p in problems if p.startswith("config warning")]
    if errors or unknown:
        raise ProvisionError("\n".join(errors + unknown))
    return raw


def config_text(cfg: dict) -> str:
    return json.dumps(cfg, indent=1, sort_keys=True) + "\n"


def write_key_table(path: Path, issuer_pubkey: bytes) -> Path:
    """The issuer key's table for the meter's flash (sgcore.secp256k1_keytable), made with the
    builder the firmware itself runs; written through a temp file."""
    from sgcore.secp256k1_table_builder import KeyTableBuilder

    tmp = path.with_name(path.name + ".tmp")
    builder = KeyTableBuilder(str(tmp), issuer_pubkey)
    while not builder.step():
        pass
    os.replace(tmp, path)
    return path


def _issuer(cfg: dict) -> bytes:
    return binascii.unhexlify(str(cfg.get("issuer_pubkey") or ""))


def write_flash_dir(flash: Path, cfg: dict) -> Path:
    flash.mkdir(parents=True, exist_ok=True)
    target = flash / "config.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(config_text(cfg))
    os.replace(tmp, target)
    if _issuer(cfg):
        write_key_table(flash / KEY_TABLE, _issuer(cfg))
    return target


def _pubkey_from(out: str) -> str | None:
    for line in out.splitlines():
        if line.startswith("PUBKEY "):
            value = line.split()[1]
            return None if value == "none" else value
    raise ProvisionError(f"the board did not answer the key query: {out[-200:]!r}")


def provision_port(port: str, cfg: dict, echo=print, key_wait_s: float = KEY_WAIT_S) -> str:  # noqa: ANN001
    """Write config.json over the REPL, read the meter's public key, reset the meter.

    Returns the public key (66 hex). A meter without a key yet is booted until it has made one.
    """
    check_port(port)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "config.json"
        local.write_text(config_text(cfg))
        if _issuer(cfg):
            table = write_key_table(Path(tmp) / KEY_TABLE, _issuer(cfg))
            run_mpremote(
                port, "fs", "cp", str(table), ":" + KEY_TABLE, what="writing the key table"
            )
        out = run_mpremote(
            port, "fs", "cp", str(local), ":config.json", "+", "exec", READ_PUBKEY,
            what="writing config.json",
        )  # fmt: skip
    echo(f"wrote config.json on {port}")
    pubkey = _pubkey_from(out)
    deadline = time.monotonic() + key_wait_s
    while pubkey is None:  # first boot: the firmware makes its key, then we ask again
        if time.monotonic() > deadline:
            raise ProvisionError(f"the meter on {port} made no key within {key_wait_s:.0f} s")
        echo("the meter has no key yet: booting it to make one")
        run_mpremote(port, "reset", what="reset")
        time.sleep(8.0)
        pubkey = _pubkey_from(run_mpremote(port, "exec", READ_PUBKEY, what="reading the key"))
    run_mpremote(port, "reset", what="reset")
    return pubkey


def provision(
    cfg: dict,
    flash: Path | None = None,
    port: str | None = None,
    echo=print,  # noqa: ANN001
) -> str | None:
    if flash is not None:
        echo(f"wrote {write_flash_dir(flash, cfg)}")
        return None
    assert port is not None
    try:
        pubkey = provision_port(port, cfg, echo)
    except FlashError as exc:
        raise ProvisionError(str(exc)) from None
    echo(f"meter public key {pubkey}")
    echo(f"enroll it: sgrid gateway enroll-meter --pubkey {pubkey} --label <name>")
    return pubkey


def main(argv: list[str] | None = None) -> int:
    from tools.cli import provision_cmd, run_standalone

    return run_standalone(provision_cmd, argv, "python -m tools.provision")


if __name__ == "__main__":
    raise SystemExit(main())
