"""Provision a meter: write its config.json (validated by the firmware's own rules).

    uv run python -m tools.provision --flash run/meter1/flash --site demo --broker 127.0.0.1:1883 \\
        --issuer-pubkey $(sgrid gateway site-key --config gateway.toml) [--set interval_s=900 ...]
    uv run python -m tools.provision --port /dev/ttyUSB0 ...      # a real board, through mpremote

The meter makes its own key at first boot and prints its public key (`meter id ... public key ...`
on the console; also Modbus registers 0x0030..0x0040). Enroll that key at the gateway with
`sgrid gateway enroll-meter --pubkey <hex> --label <name>`: the private key never leaves the meter.

Next to config.json it writes issuer.tbl, the fixed-base table of the issuer's key
(sgcore.secp256k1_keytable, 88 KB), computed here with the firmware's own builder: with it the
meter verifies a token or an ack at about a third of the cost (docs/crypto.md).
"""

from __future__ import annotations

import argparse
import binascii
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "firmware" / "lib"))
import config as meter_config  # noqa: E402  (the firmware's module: one set of rules)

from sgcore.secp256k1_keytable import DEFAULT_PATH as KEY_TABLE  # noqa: E402


class ProvisionError(RuntimeError):
    pass


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare string


def build_config(site: str, broker: str, issuer_pubkey: str, settings: list[str]) -> dict:
    host, sep, port = broker.rpartition(":")
    if not sep:
        host, port = broker, ""
    raw: dict[str, object] = {
        "site": site,
        "broker_host": host,
        "issuer_pubkey": issuer_pubkey.lower(),
    }
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--flash", type=Path, help="an emulated board's flash directory")
    where.add_argument("--port", help="a real board's serial port (uses mpremote)")
    ap.add_argument("--site", required=True)
    ap.add_argument("--broker", required=True, help="HOST[:PORT] of the site's MQTT broker")
    ap.add_argument("--issuer-pubkey", required=True, help="the gateway's site key (66 hex)")
    ap.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other config key (see firmware/lib/config.py), e.g. interval_s=900",
    )
    args = ap.parse_args(argv)
    try:
        cfg = build_config(args.site, args.broker, args.issuer_pubkey, args.settings)
    except ProvisionError as exc:
        print(f"provision: refused:\n{exc}", file=sys.stderr)
        return 2
    text = json.dumps(cfg, indent=1, sort_keys=True) + "\n"
    issuer = binascii.unhexlify(str(cfg["issuer_pubkey"]))
    if args.flash:
        args.flash.mkdir(parents=True, exist_ok=True)
        (args.flash / "config.json").write_text(text)
        print(f"wrote {args.flash / 'config.json'}")
        if issuer:
            print(f"wrote {write_key_table(args.flash / KEY_TABLE, issuer)}")
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
    if issuer:
        table = write_key_table(Path(f.name).with_suffix(".tbl"), issuer)
        rc = subprocess.call(_mpremote_cp(args.port, table, KEY_TABLE))
        if rc:
            return rc
    return subprocess.call(_mpremote_cp(args.port, Path(f.name), "config.json"))


def _mpremote_cp(port: str, source: Path, target: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mpremote",
        "connect",
        port,
        "fs",
        "cp",
        str(source),
        ":" + target,
    ]


if __name__ == "__main__":
    raise SystemExit(main())
