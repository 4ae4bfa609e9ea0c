# The meter on the site network: MQTT link, the journal's store-and-forward uplink, credit tokens
# in, status events out (topics: docs/mqtt-topics.md; the meter's side: docs/meter-mqtt.md).
#
#   sg/<site>/<meter>/reading  out  signed records (uplink.Uplink, acked by the gateway)
#   sg/<site>/<meter>/token    in   credit tokens (sgcore.token), maybe with their delivery tag
#   sg/<site>/<meter>/event    out  JSON events: token results, relay changes, warnings (QoS 0)
#   sg/<site>/<meter>/status   out  retained online / offline (the will)
import binascii
import json

import uplink
from mqtt import MQTTClient, MqttLink

from sgcore import token as tk


class MeterNet:
    def __init__(self, board, cfg, journal, meter_id, site_pubkey, on_token, on_command):
        site = cfg["site"]
        hex_id = binascii.hexlify(meter_id)
        if cfg["wifi_ssid"]:
            board.network_connect(cfg["wifi_ssid"], cfg["wifi_password"])
        ca = cfg["broker_tls_ca"]
        connect = None
        if ca:  # TLS: the board's socket layer verifies the broker against this CA

            def connect(host, port, timeout_ms):
                return board.tcp_connect(host, port, timeout_ms, ca)

        self.link = MqttLink(board, cfg["broker_host"], cfg["broker_port"], b"meter-" + hex_id,
                             user=cfg["broker_user"].encode() or None,
                             password=cfg["broker_password"].encode() or None,
                             will_topic=uplink.topic(site, meter_id, "status"), connect=connect,
                             keepalive_s=cfg["mqtt_keepalive_s"],
                             timeout_ms=cfg["mqtt_timeout_s"] * 1000)  # fmt: skip
        self.client = MQTTClient(self.link, window=4)
        self.uplink = uplink.Uplink(self.client, journal, board, site, meter_id, site_pubkey,
                                    on_command=on_command,
                                    rewind_ms=cfg["ack_timeout_s"] * 1000)  # fmt: skip
        self.token_topic = uplink.topic(site, meter_id, "token")
        self.event_topic = uplink.topic(site, meter_id, "event")
        self._on_token = on_token
        self.extra = None  # another service's handler(topic, payload) -> True if it took it (OTA)
        self._tokens_in = []  # tokens received in this poll (at most the packets a poll reads)
        self._uplink_handler = self.client.on_message
        self.client.on_message = self._on_message
        self.client.subscribe(self.token_topic, 1)

    def _on_message(self, topic, payload, retained):
        if topic == self.token_topic:
            self._tokens_in.append(bytes(payload))  # handled in poll(), outside the reader
        elif self.extra is not None and self.extra(topic, payload):
            pass
        else:
            self._uplink_handler(topic, payload, retained)

    def busy(self):
        return self.uplink.busy()

    def event(self, kind, **fields):
        """A status event for the gateway and dashboards (best effort: QoS 0, dropped offline)."""
        fields["event"] = kind
        try:
            self.client.publish(self.event_topic, json.dumps(fields).encode(), qos=0)
        except (OSError, ValueError):
            pass

    def poll(self):
        self.client.poll()
        while self._tokens_in:
            data = self._tokens_in.pop(0)
            if len(data) == tk.TOKEN_LEN + tk.TAG_LEN:  # token || delivery tag
                self._on_token(data[: tk.TOKEN_LEN], data[tk.TOKEN_LEN :])
            else:
                self._on_token(data, None)
        self.uplink.poll()
