"""The MQTT topic scheme (docs/mqtt-topics.md). Pure string handling."""

from __future__ import annotations

import re

PREFIX = "sg"
_METER_HEX = re.compile(r"^[0-9a-f]{32}$")


def meter_topic(site: str, meter_hex: str, leaf: str) -> str:
    """`sg/<site>/<meter_id_hex>/<leaf>` with leaf in reading, ack, cmd, status, state."""
    return f"{PREFIX}/{site}/{meter_hex}/{leaf}"


def subscriptions(site: str) -> list[tuple[str, int]]:
    """What the gateway subscribes to (topic filter, QoS)."""
    return [(f"{PREFIX}/{site}/+/reading", 1), (f"{PREFIX}/{site}/+/status", 1)]


def gateway_status_topic(site: str) -> str:
    return f"{PREFIX}/{site}/gateway/status"


def modbus_state_topic(site: str, device: str) -> str:
    return f"{PREFIX}/{site}/modbus/{device}/state"


def parse_meter_topic(site: str, topic: str) -> tuple[str, str] | None:
    """(meter_id_hex, leaf) for a topic of this site, or None if it does not follow the scheme."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != PREFIX or parts[1] != site:
        return None
    if not _METER_HEX.match(parts[2]):
        return None
    return parts[2], parts[3]
