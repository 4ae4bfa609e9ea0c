"""The MQTT topic scheme between meters and the gateway (docs/mqtt-topics.md): the one copy.

    <prefix>/<site>/<meter id, 32 lowercase hex>/<leaf>   reading ack cmd token event status state
    <prefix>/<site>/gateway/status                        the gateway's will
    <prefix>/<site>/modbus/<device>/state                 the last Modbus poll of a device

Pure string handling; the meter uses `meter_topic_bytes`, the gateway the str functions.
"""

import binascii

PREFIX = "sg"
METER_LEAVES = ("reading", "ack", "cmd", "token", "event", "status", "state")
_HEX = "0123456789abcdef"


def meter_topic(site, meter_hex, leaf, prefix=PREFIX):
    """ "<prefix>/<site>/<meter_hex>/<leaf>" (str)."""
    return "%s/%s/%s/%s" % (prefix, site, meter_hex, leaf)


def meter_topic_bytes(site, meter_id, leaf, prefix=PREFIX):
    """The meter's own topic for `leaf` as bytes, from its 16-byte id."""
    return meter_topic(site, binascii.hexlify(meter_id).decode(), leaf, prefix).encode()


def subscriptions(site, prefix=PREFIX):
    """What the gateway subscribes to: [(topic filter, QoS)]."""
    return [
        (meter_topic(site, "+", "reading", prefix), 1),
        (meter_topic(site, "+", "status", prefix), 1),
        (meter_topic(site, "+", "event", prefix), 0),  # token answers (credit delivery)
    ]


def gateway_status_topic(site, prefix=PREFIX):
    return "%s/%s/gateway/status" % (prefix, site)


def modbus_state_topic(site, device, prefix=PREFIX):
    return "%s/%s/modbus/%s/state" % (prefix, site, device)


def is_meter_hex(text):
    return len(text) == 32 and all(c in _HEX for c in text)


def parse_meter_topic(site, topic, prefix=PREFIX):
    """(meter_id_hex, leaf) for a meter topic of this site, or None if it does not follow the scheme."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != prefix or parts[1] != site or not is_meter_hex(parts[2]):
        return None
    return parts[2], parts[3]
