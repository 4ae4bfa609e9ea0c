"""Prometheus metrics of the gateway, in their own registry (served by `serve`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "sgrid_readings_accepted",
            "Readings verified, stored and acknowledged",
            ["meter"],
            registry=r,
        )
        self.rejected = Counter(
            "sgrid_readings_rejected", "Readings refused, by reason", ["reason"], registry=r
        )
        self.status_rejected = Counter(
            "sgrid_status_rejected", "Meter status messages refused, by reason", ["reason"],
            registry=r,
        )  # fmt: skip
        self.status_suppressed = Counter(
            "sgrid_status_answers_suppressed",
            "Online statuses not answered: the meter was answered within ingest.status_answer_s",
            registry=r,
        )
        self.acks = Counter("sgrid_acks_sent", "Acknowledgements published", registry=r)
        self.resends = Counter("sgrid_resend_requests", "Resend commands published", registry=r)
        self.store_errors = Counter("sgrid_store_errors", "Batches the store refused", registry=r)
        self.batch_seconds = Histogram(
            "sgrid_ingest_batch_seconds",
            "Time to verify and commit one batch",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.queue_depth = Gauge(
            "sgrid_ingest_queue_depth", "Messages waiting for ingest", registry=r
        )
        self.mqtt_connected = Gauge(
            "sgrid_mqtt_connected", "1 while connected to the broker", registry=r
        )
        self.meter_online = Gauge(
            "sgrid_meter_online", "Last status of a meter", ["meter"], registry=r
        )
        self.modbus_reads = Counter(
            "sgrid_modbus_reads", "Successful Modbus polls", ["device"], registry=r
        )
        self.modbus_errors = Counter(
            "sgrid_modbus_errors", "Failed Modbus transactions", ["device", "kind"], registry=r
        )
        self.modbus_value = Gauge(
            "sgrid_modbus_value", "Last value read over Modbus", ["device", "quantity"], registry=r
        )
        self._server: Any = None

    def serve(self, addr: str, port: int) -> int:
        """Start the HTTP exporter; returns the bound port (port 0 picks a free one)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
