"""Gateway configuration: a TOML file validated into frozen dataclasses.

Every problem is reported with the dotted key it concerns (`mqtt.port: must be ...`), all of them
at once, so `sgrid gateway check-config` tells an installer everything that is wrong in one pass.
The documented example is `gateway/examples/gateway.toml`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config_checks import Check, boolean, check_table, host, int_in, num_in, pin, string
from gateway.config_grid import SCHEMA as GRID_SCHEMA
from gateway.config_grid import GridConfig, parse_grid
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
    max_future_s: int = 300  # readings ending further ahead of the gateway clock are refused
    status_answer_s: float = 10.0  # an `online` status is answered at most once per meter per this


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
    grid: GridConfig = field(default_factory=GridConfig)

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or "sgrid-gateway-" + self.site


# section -> key -> (check, required)
_SCHEMA: dict[str, dict[str, tuple[Check, bool]]] = {
    "gateway": {
        "site": (string(_SITE_RE), True),
        "state_dir": (string(), False),
        "database": (string(), False),
        "site_key_file": (string(), False),
    },
    "mqtt": {
        "host": (host, False),
        "port": (int_in(1, 65535), False),
        "client_id": (string(), False),
        "username": (string(), False),
        "password_file": (string(), False),
        "keepalive_s": (int_in(5, 3600), False),
        "tls_ca_file": (string(), False),
    },
    "ingest": {
        "max_batch": (int_in(1, 100_000), False),
        "batch_wait_ms": (int_in(0, 1000), False),
        "resend_cooldown_s": (num_in(0, 3600), False),
        "max_future_s": (int_in(10, 86400), False),
        "status_answer_s": (num_in(0, 3600), False),
    },
    "metrics": {
        "enabled": (boolean, False),
        "listen": (host, False),
        "port": (int_in(1, 65535), False),
    },
    "homeassistant": {
        "enabled": (boolean, False),
        "discovery_prefix": (string(re.compile(r"^[A-Za-z0-9_/-]+$")), False),
    },
    "gpio": {
        "enabled": (boolean, False),
        "mock": (boolean, False),
        "status_led": (pin, False),
        "local_relay": (pin, False),
    },
}

_BUS_SCHEMA: dict[str, tuple[Check, bool]] = {
    "name": (string(_NAME_RE), True),
    "kind": (string(choices=("rtu", "tcp")), True),
    "port": (string(), False),
    "baudrate": (int_in(1200, 921_600), False),
    "parity": (string(choices=("N", "E", "O")), False),
    "stopbits": (int_in(1, 2), False),
    "host": (host, False),
    "tcp_port": (int_in(1, 65535), False),
    "timeout_s": (num_in(0.05, 30), False),
    "retries": (int_in(0, 10), False),
    "turnaround_ms": (num_in(0, 1000), False),
    "de_pin": (pin, False),
}

_DEVICE_SCHEMA: dict[str, tuple[Check, bool]] = {
    "name": (string(_NAME_RE), True),
    "bus": (string(), True),
    "model": (string(), True),
    "unit": (int_in(1, 247), False),
    "poll_s": (num_in(0.1, 86_400), False),
}


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
            out.append(check_table(f"modbus.{kind}[{i}]", entry, schema, problems))
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
        if key not in _SCHEMA and key not in GRID_SCHEMA and key not in ("modbus", "topology"):
            problems.append(f"{key}: unknown section")
    if "gateway" not in raw:
        problems.append("gateway: missing section (required)")
    sections = {
        name: check_table(name, raw.get(name, {}), s, problems) for name, s in _SCHEMA.items()
    }
    buses, devices = _check_modbus(raw.get("modbus", {}), problems)
    _cross_check_modbus(buses, devices, problems)
    g = sections["gateway"]
    state_dir = Path(g.get("state_dir", "/var/lib/seamless-grid"))
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    grid = parse_grid(raw, g.get("site", ""), state_dir, problems)
    mqtt = _resolve_files(sections["mqtt"], base_dir, problems)
    if problems:
        raise ConfigError(problems)
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
        grid=grid,
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
