"""Home Assistant MQTT discovery: every meter appears as a device whose energy sensors feed the
HA Energy dashboard (`device_class: energy`, `state_class: total_increasing`, kWh).

The gateway publishes one retained JSON state per meter at `sg/<site>/<meter>/state` (and per
Modbus device at `sg/<site>/modbus/<device>/state`); the discovery configs point into it.
"""

from __future__ import annotations

import json

from sgcore import reading as rc
from sgcore import topics

# (object_id, component, name, value key, extra config)
_METER_ENTITIES: tuple[tuple[str, str, str, str, dict], ...] = (
    ("import_energy", "sensor", "Energy import", "import_kwh",
     {"device_class": "energy", "state_class": "total_increasing", "unit_of_measurement": "kWh"}),
    ("export_energy", "sensor", "Energy export", "export_kwh",
     {"device_class": "energy", "state_class": "total_increasing", "unit_of_measurement": "kWh"}),
    ("power", "sensor", "Power", "power_w",
     {"device_class": "power", "state_class": "measurement", "unit_of_measurement": "W"}),
    ("voltage", "sensor", "Voltage", "voltage_v",
     {"device_class": "voltage", "state_class": "measurement", "unit_of_measurement": "V"}),
    ("credit", "sensor", "Credit", "credit_wh",
     {"state_class": "measurement", "unit_of_measurement": "Wh"}),
    ("relay", "binary_sensor", "Relay", "relay", {"device_class": "power"}),
)  # fmt: skip

_MODBUS_UNITS = {
    "V": ("voltage", "measurement"),
    "A": ("current", "measurement"),
    "W": ("power", "measurement"),
    "Hz": ("frequency", "measurement"),
    "kWh": ("energy", "total_increasing"),
    "Wh": ("energy", "total_increasing"),
}


def meter_state(reading: rc.Reading) -> bytes:
    """The retained state JSON for a meter, from its latest stored reading."""
    return json.dumps(
        {
            "seq": reading.seq,
            "t": reading.end,
            "import_kwh": reading.import_wh / 1000,
            "export_kwh": reading.export_wh / 1000,
            "power_w": reading.avg_power_w,
            "voltage_v": reading.voltage_dv / 10,
            "relay": "ON" if reading.relay else "OFF",
            "credit_wh": reading.credit_wh,
        },
        separators=(",", ":"),
    ).encode()


def meter_discovery(
    prefix: str, site: str, meter_hex: str, label: str = ""
) -> list[tuple[str, bytes]]:
    """(topic, retained payload) of every discovery config for one meter."""
    node = f"sgrid_{meter_hex}"
    device = {
        "identifiers": [node],
        "name": label or f"Seamless Grid meter {meter_hex[:8]}",
        "manufacturer": "Seamless Grid",
        "model": "ESP32 meter",
        "via_device": f"sgrid_gateway_{site}",
    }
    out = []
    for object_id, component, name, key, extra in _METER_ENTITIES:
        cfg = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "state_topic": topics.meter_topic(site, meter_hex, "state"),
            "value_template": "{{ value_json.%s }}" % key,  # noqa: UP031 (Jinja braces)
            # the meter's status is "offline" (its will) or {"state": "online", "nonce": ...}
            "availability_topic": topics.meter_topic(site, meter_hex, "status"),
            "availability_template": "{{ value_json.state if value[:1] == '{' else value }}",  # noqa: E501
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            **extra,
        }
        topic = f"{prefix}/{component}/{node}/{object_id}/config"
        out.append((topic, json.dumps(cfg, separators=(",", ":")).encode()))
    return out


def modbus_discovery(
    prefix: str, site: str, device: str, model: str, quantities: list[tuple[str, str]]
) -> list[tuple[str, bytes]]:
    """Discovery configs for a Modbus device; `quantities` are (name, unit) of its registers."""
    node = f"sgrid_{site}_{device}"
    dev = {"identifiers": [node], "name": f"{device} ({model})", "model": model}
    out = []
    for name, unit in quantities:
        cfg: dict = {
            "name": name.replace("_", " "),
            "unique_id": f"{node}_{name}",
            "state_topic": topics.modbus_state_topic(site, device),
            "value_template": "{{ value_json.%s }}" % name,  # noqa: UP031 (Jinja braces)
            "device": dev,
        }
        if unit in _MODBUS_UNITS:
            cfg["device_class"], cfg["state_class"] = _MODBUS_UNITS[unit]
        if unit:
            cfg["unit_of_measurement"] = unit
        out.append(
            (
                f"{prefix}/sensor/{node}/{name}/config",
                json.dumps(cfg, separators=(",", ":")).encode(),
            )
        )
    return out
