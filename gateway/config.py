"""Gateway configuration: a TOML file validated into frozen dataclasses.

Every problem is reported with the dotted key it concerns (`mqtt.port: must be ...`), all of them
at once, so `sgrid gateway check-config` tells an installer everything that is wrong in one pass.
The documented example is `gateway/examples/gateway.toml`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

_SITE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # default: sgrid-gateway-<site>
    username: str = ""
    password_file: str = ""
    keepalive_s: int = 30
    tls_ca_file: str = ""  # set: TLS to the broker, its certificate checked against this CA


@dataclass(frozen=True)
class IngestConfig:
    max_batch: int = 500  # records verified and committed in one SQLite transaction
    batch_wait_ms: int = 5  # how long a batch may wait to fill up once it has one record
    resend_cooldown_s: float = 5.0  # at most one resend request per meter in this window


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = True
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class GpioConfig:
    enabled: bool = False
    mock: bool = False  # use gpiozero's mock pin factory (off a Pi, in tests)
    status_led: int | None = None  # BCM pin of the status LED
    local_relay: int | None = None  # BCM pin of an optional local relay


@dataclass(frozen=True)
class ModbusBusConfig:
    name: str
    kind: str  # "rtu" or "tcp"
    port: str = ""  # serial device (rtu)
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    host: str = ""  # tcp
    tcp_port: int = 502
    timeout_s: float = 1.0
    retries: int = 2
    turnaround_ms: float = 0.0  # extra silence after each transaction (0: 3.5 char times only)
    de_pin: int | None = None  # BCM pin driving RS-485 DE/RE when the HAT has no auto-direction


@dataclass(frozen=True)
class ModbusDeviceConfig:
    name: str
    bus: str
    model: str
    unit: int = 1
    poll_s: float = 10.0


@dataclass(frozen=True)
class GatewayConfig:
    site: str
    state_dir: Path
    database: Path
    site_key_file: Path
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    buses: tuple[ModbusBusConfig, ...] = ()
    devices: tuple[ModbusDeviceConfig, ...] = ()

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or "sgrid-gateway-" + self.site


# --- checks: each returns an error text, or None when the value is fine -------------------------

Check = Callable[[Any], str | None]


def _int(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer in {lo}..{hi}, got {v!r}"
        return None

    return check


def _num(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            return f"must be a number in {lo:g}..{hi:g}, got {v!r}"
        return None

    return check


def _str(pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"must be a string, got {v!r}"
        if choices and v not in choices:
            return "must be one of {}, got {!r}".format(", ".join(choices), v)
        if pattern is not None and not pattern.match(v):
            return f"must match {pattern.pattern}, got {v!r}"
        return None

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def _pin(v: Any) -> str | None:
    return _int(0, 27)(v)


# section -> key -> (check, required)
_SCHEMA: dict[str, dict[str, tuple[Check, bool]]] = {
    "gateway": {
        "site": (_str(_SITE_RE), True),
        "state_dir": (_str(), False),
        "database": (_str(), False),
        "site_key_file": (_str(), False),
    },
    "mqtt": {
        "host": (_str(), False),
        "port": (_int(1, 65535), False),
        "client_id": (_str(), False),
        "username": (_str(), False),
        "password_file": (_str(), False),
        "keepalive_s": (_int(5, 3600), False),
        "tls_ca_file": (_str(), False),
    },
    "ingest": {
        "max_batch": (_int(1, 100_000), False),
        "batch_wait_ms": (_int(0, 1000), False),
        "resend_cooldown_s": (_num(0, 3600), False),
    },
    "metrics": {
        "enabled": (_bool, False),
        "listen": (_str(), False),
        "port": (_int(0, 65535), False),
    },
    "homeassistant": {
        "enabled": (_bool, False),
        "discovery_prefix": (_str(re.compile(r"^[A-Za-z0-9_/-]+$")), False),
    },
    "gpio": {
        "enabled": (_bool, False),
        "mock": (_bool, False),
        "status_led": (_pin, False),
        "local_relay": (_pin, False),
    },
}

_BUS_SCHEMA: dict[str, tuple[Check, bool]] = {
    "name": (_str(_NAME_RE), True),
    "kind": (_str(choices=("rtu", "tcp")), True),
    "port": (_str(), False),
    "baudrate": (_int(1200, 921_600), False),
    "parity": (_str(choices=("N", "E", "O")), False),
    "stopbits": (_int(1, 2), False),
    "host": (_str(), False),
    "tcp_port": (_int(1, 65535), False),
    "timeout_s": (_num(0.05, 30), False),
    "retries": (_int(0, 10), False),
    "turnaround_ms": (_num(0, 1000), False),
    "de_pin": (_pin, False),
}

_DEVICE_SCHEMA: dict[str, tuple[Check, bool]] = {
    "name": (_str(_NAME_RE), True),
    "bus": (_str(), True),
    "model": (_str(), True),
    "unit": (_int(1, 247), False),
    "poll_s": (_num(0.1, 86_400), False),
}


def _check_table(
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


def _check_modbus(raw: Any, problems: list[str]) -> tuple[list[dict], list[dict]]:
    if not isinstance(raw, dict):
        problems.append("modbus: must be a table")
        return [], []
    for key in raw:
        if key not in ("bus", "device"):
            problems.append(
                f"modbus.{key}: unknown key (expected [[modbus.bus]] / [[modbus.device]])"
            )
    buses: list[dict] = []
    devices: list[dict] = []
    for kind, schema, out in (("bus", _BUS_SCHEMA, buses), ("device", _DEVICE_SCHEMA, devices)):
        entries = raw.get(kind, [])
        if not isinstance(entries, list):
            problems.append(f"modbus.{kind}: must be an array of tables ([[modbus.{kind}]])")
            continue
        for i, entry in enumerate(entries):
            out.append(_check_table(f"modbus.{kind}[{i}]", entry, schema, problems))
    return buses, devices


def _cross_check_modbus(buses: list[dict], devices: list[dict], problems: list[str]) -> None:
    from gateway.modbus.registers import MODELS  # local: keeps config import light

    names = [b.get("name") for b in buses]
    for i, bus in enumerate(buses):
        if names.count(bus.get("name")) > 1:
            problems.append(f"modbus.bus[{i}].name: duplicate bus name {bus.get('name')!r}")
        if bus.get("kind") == "rtu" and not bus.get("port"):
            problems.append(f"modbus.bus[{i}].port: required for an rtu bus")
        if bus.get("kind") == "tcp" and not bus.get("host"):
            problems.append(f"modbus.bus[{i}].host: required for a tcp bus")
    seen: set[str] = set()
    for i, dev in enumerate(devices):
        if dev.get("name") in seen:
            problems.append(f"modbus.device[{i}].name: duplicate device name {dev['name']!r}")
        seen.add(dev.get("name", ""))
        if "bus" in dev and dev["bus"] not in names:
            problems.append(f"modbus.device[{i}].bus: no [[modbus.bus]] named {dev['bus']!r}")
        if "model" in dev and dev["model"] not in MODELS:
            problems.append(
                f"modbus.device[{i}].model: unknown model {dev['model']!r}"
                f" (known: {', '.join(sorted(MODELS))})"
            )


def _resolve_files(
    mqtt: dict[str, Any], base_dir: Path | None, problems: list[str]
) -> dict[str, Any]:
    """Paths relative to the config file's directory; the CA file must be readable now."""
    out = dict(mqtt)
    for key in ("password_file", "tls_ca_file"):
        if out.get(key) and base_dir is not None and not Path(out[key]).is_absolute():
            out[key] = str(base_dir / out[key])
    ca = out.get("tls_ca_file")
    if ca:
        try:
            head = Path(ca).read_bytes()[:4096]
        except OSError as exc:
            problems.append(f"mqtt.tls_ca_file: cannot read {ca} ({exc.strerror or exc})")
        else:
            if b"-----BEGIN CERTIFICATE-----" not in head:
                problems.append(f"mqtt.tls_ca_file: {ca} holds no PEM certificate")
    return out


def parse_config(raw: dict[str, Any], base_dir: Path | None = None) -> GatewayConfig:
    """Validate a parsed TOML document. Raises ConfigError listing every problem."""
    problems: list[str] = []
    for key in raw:
        if key not in _SCHEMA and key != "modbus":
            problems.append(f"{key}: unknown section")
    if "gateway" not in raw:
        problems.append("gateway: missing section (required)")
    sections = {
        name: _check_table(name, raw.get(name, {}), s, problems) for name, s in _SCHEMA.items()
    }
    buses, devices = _check_modbus(raw.get("modbus", {}), problems)
    _cross_check_modbus(buses, devices, problems)
    mqtt = _resolve_files(sections["mqtt"], base_dir, problems)
    if problems:
        raise ConfigError(problems)

    g = sections["gateway"]
    state_dir = Path(g.get("state_dir", "/var/lib/seamless-grid"))
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    return GatewayConfig(
        site=g["site"],
        state_dir=state_dir,
        database=state_dir / g.get("database", "readings.sqlite3"),
        site_key_file=state_dir / g.get("site_key_file", "site.key"),
        mqtt=MqttConfig(**mqtt),
        ingest=IngestConfig(**sections["ingest"]),
        metrics=MetricsConfig(**sections["metrics"]),
        homeassistant=HomeAssistantConfig(**sections["homeassistant"]),
        gpio=GpioConfig(**sections["gpio"]),
        buses=tuple(ModbusBusConfig(**b) for b in buses),
        devices=tuple(ModbusDeviceConfig(**d) for d in devices),
    )


def load_config(path: Path) -> GatewayConfig:
    """Read and validate a TOML file; relative state_dir is taken relative to the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from exc
    return parse_config(raw, base_dir=path.resolve().parent)
