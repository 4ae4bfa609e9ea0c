"""`sgrid gateway run`: the asyncio service that ties MQTT, ingest, Modbus, metrics and pins.

Life cycle: open store and site key -> metrics -> pins -> MQTT -> READY=1 -> ingest loop, Modbus
pollers and the watchdog -> SIGTERM/SIGINT: stop taking messages, ingest what is queued, publish
its acks, "offline", close the store (WAL checkpoint) -> STOPPING=1 -> exit 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from typing import TYPE_CHECKING

import sdnotify

from gateway import clock
from gateway.config import GatewayConfig
from gateway.crypto import SiteKey
from gateway.ingest.pipeline import BatchOutcome, Incoming, Ingestor, Reason
from gateway.ingest.pipelined import IngestPipeline, Result, StoreFailed
from gateway.ingest.store import ReadingStore
from gateway.metrics import GatewayMetrics
from gateway.mqtt import discovery, messages, status
from gateway.mqtt.bridge import MqttBridge
from gateway.pins import GatewayPins
from gateway.service.rejection_log import RejectionLog

if TYPE_CHECKING:
    from gateway.grid.runtime import GridRuntime
from sgcore import reading as rc
from sgcore import topics

log = logging.getLogger("gateway")

MAX_QUEUE = 100_000  # readings waiting for ingest; beyond, new ones are dropped (and resent later)
MAX_TOPICS = 10_000  # meter topics whose parse is remembered


class GatewayService:
    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.metrics = GatewayMetrics()
        self.store = ReadingStore(cfg.database)
        self.site_key = SiteKey.load_or_create(cfg.site_key_file)
        self.ingestor = Ingestor(
            self.store, cfg.ingest.resend_cooldown_s, wall=clock.now,
            max_future_s=cfg.ingest.max_future_s,
        )  # fmt: skip
        # signatures are checked on the loop, a batch at a time: a verify thread beside the loop
        # made the two convoy on the GIL (each verify's return waited for the loop's Python)
        self.pipeline = IngestPipeline(self.ingestor)
        self._answers = status.AnswerLimiter(cfg.ingest.status_answer_s)
        self._nonces: dict[bytes, bytes] = {}  # meter -> its clock nonce not used yet
        # clock commands for readings from the future: those the meter signed before its clock
        # was set back stay in the future a while, each batch of them must not ask again
        self._clock_fixes = status.AnswerLimiter(cfg.ingest.status_answer_s, burst=1)
        self._modbus_seen: dict[str, str] = {}  # device -> model, for discovery after a reconnect
        self.notifier = sdnotify.SystemdNotifier()
        self.pins = GatewayPins(cfg.gpio)
        self._incoming: list[Incoming] = []  # readings received, not yet taken by the ingest
        self._arrived: asyncio.Future[None] | None = None  # the ingest loop waits: nothing came
        self._stopping = asyncio.Event()
        self._heartbeat = time.monotonic()
        self._discovered: set[bytes] = set()
        self._topics: dict[str, tuple[str, str]] = {}  # meter topic -> (meter hex, leaf)
        self._rejection_log = RejectionLog(log)
        self.bridge: MqttBridge | None = None
        self.metrics_port: int | None = None
        self.grid: GridRuntime | None = None
        if cfg.grid.node.enabled:
            from gateway.grid.runtime import GridRuntime

            self.grid = GridRuntime(cfg, self.store, self.site_key, self._publish)

    # --- wiring ------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        if self.cfg.metrics.enabled:
            self.metrics_port = self.metrics.serve(self.cfg.metrics.listen, self.cfg.metrics.port)
            log.info("metrics on http://%s:%d/metrics", self.cfg.metrics.listen, self.metrics_port)
        self.bridge = MqttBridge(
            self.cfg, loop, self._on_message, self._on_connect, self._on_disconnect
        )
        self.bridge.start()
        if self.grid is not None:
            self.grid.start()
        tasks = [asyncio.create_task(self._ingest_loop(), name="ingest")]
        tasks += self._modbus_tasks()
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_usec:
            tasks.append(asyncio.create_task(self._watchdog(watchdog_usec / 2e6), name="watchdog"))
        self.notifier.notify("READY=1")
        self.notifier.notify(
            f"STATUS=site {self.cfg.site}, {len(self.ingestor.known_meters())} meters"
        )
        log.info("gateway ready: site %s, store %s", self.cfg.site, self.cfg.database)
        await self._stopping.wait()
        self.notifier.notify("STOPPING=1")
        await self._shutdown(tasks)

    def request_stop(self) -> None:
        log.info("stop requested")
        self._stopping.set()

    async def _shutdown(self, tasks: list[asyncio.Task]) -> None:
        assert self.bridge is not None
        self.bridge.stop_accepting()
        for t in tasks:
            if t.get_name() != "ingest":
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # ingest drains its queue and returns
        if self.grid is not None:
            await self.grid.stop()
        await self.bridge.stop()
        self.store.close()
        self.metrics.close()
        self.pins.close()
        log.info("gateway stopped cleanly")

    def _modbus_tasks(self) -> list[asyncio.Task]:
        if not self.cfg.devices:
            return []
        from gateway.modbus.poller import BusPoller  # pymodbus only when Modbus is configured

        tasks = []
        for bus in self.cfg.buses:
            devices = [d for d in self.cfg.devices if d.bus == bus.name]
            if devices:
                poller = BusPoller(bus, devices, self.metrics, self._on_modbus_values, self.pins)
                tasks.append(asyncio.create_task(poller.run(), name=f"modbus-{bus.name}"))
        return tasks

    # --- MQTT callbacks (on the asyncio loop) ------------------------------------------------------

    def _on_connect(self) -> None:
        self.metrics.mqtt_connected.set(1)
        self.pins.set_connected(True)
        if self.cfg.homeassistant.enabled:  # the broker may have lost its retained messages
            self._discovered.clear()
            for mid in self.ingestor.known_meters():
                self._publish_discovery(mid)
            for device, model in self._modbus_seen.items():
                self._publish_modbus_discovery(device, model)

    def _on_disconnect(self) -> None:
        self.metrics.mqtt_connected.set(0)
        self.pins.set_connected(False)

    def _on_message(self, topic: str, payload: bytes, received_at: float) -> None:
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = topics.parse_meter_topic(self.cfg.site, topic)
            if parsed is None:
                return
            if len(self._topics) < MAX_TOPICS:  # a site's meters use a few topics each
                self._topics[topic] = parsed
        meter_hex, leaf = parsed
        if leaf == "reading":
            incoming = self._incoming
            if len(incoming) >= MAX_QUEUE:  # overload: not acked, so the meter resends it
                self.metrics.rejected.labels("overload").inc()
                self._rejection_log.log("overload", meter_hex, None, "ingest queue full")
                return
            incoming.append(Incoming(meter_hex, payload, received_at))
            waiting = self._arrived
            if waiting is not None:
                self._arrived = None
                if not waiting.done():
                    waiting.set_result(None)
        elif leaf == "status":
            self._on_status(meter_hex, payload)
        elif leaf == "event" and self.grid is not None:
            self.grid.on_event(meter_hex, payload)

    def _on_status(self, meter_hex: str, payload: bytes) -> None:
        mid = bytes.fromhex(meter_hex)
        if mid not in self.ingestor.known_meters() and self.store.meter(mid) is None:
            return  # status of a meter we do not know: ignored, nothing to say to it
        try:
            online, nonce, refresh = status.parse_status(payload)
        except status.StatusRejected as exc:
            self.metrics.status_rejected.labels(exc.reason).inc()
            self._rejection_log.log(f"status_{exc.reason}", meter_hex, None, exc.detail)
            return
        self.metrics.meter_online.labels(meter_hex).set(1 if online else 0)
        if not online:
            return
        if nonce is not None:
            self._nonces[mid] = nonce  # for a clock command later (a reading from the future)
        if refresh:
            return  # only the next nonce: answering it with a clock command would loop
        if not self._answers.allow(mid):  # a flood of (forged) online messages: answered once
            self.metrics.status_suppressed.inc()
            return
        if self.cfg.homeassistant.enabled and mid not in self._discovered:
            self._publish_discovery(mid)  # e.g. enrolled while we run
        head = self.ingestor.head(mid)  # tell the (re)started meter where we are, and the time
        if head is not None:
            self._send_ack(mid, *head)
        if nonce is not None:  # sets the meter's clock even back (a clock set into the future)
            self._send_clock(mid)
        else:
            self._send_cmd(mid, "time", round(clock.now()))
        if self.grid is not None:
            self.grid.meter_online(mid)

    # --- ingest -------------------------------------------------------------------------------

    async def _ingest_loop(self) -> None:
        """Take up to `max_batch` readings, check them (signatures included) on this thread,
        hand the batch's COMMIT to the pipeline's commit thread and take the next batch while
        it runs; acks go out once their batch is committed. While the loop waits for a
        commit it goes on receiving; a status answered meanwhile gets the committed head."""
        wait = self.cfg.ingest.batch_wait_ms / 1000
        max_batch = self.cfg.ingest.max_batch
        pipe = self.pipeline
        while True:
            self._heartbeat = time.monotonic()
            if self._stopping.is_set():
                batch = self._take(max_batch)
                if not batch:
                    self._publish_results(pipe.close())
                    return
            else:
                fut = pipe.inflight
                if fut is not None and not self._incoming:
                    # nothing else to check: acknowledge the batch being stored once it is
                    stored = asyncio.wrap_future(fut)
                    await asyncio.wait((stored,), timeout=0.5)
                    if stored.done():
                        stored.exception()  # retrieved here; finish() reports it
                        self._publish_results(pipe.finish())
                    continue
                if not self._incoming and not await self._arrival(0.5):
                    continue
                if len(self._incoming) < max_batch and wait > 0:
                    await asyncio.sleep(wait)  # let the batch fill up (one commit for more)
                batch = self._take(max_batch)
            self.metrics.queue_depth.set(len(self._incoming))
            t0 = time.perf_counter()
            checked = pipe.check(batch)  # while the previous batch commits
            spent = time.perf_counter() - t0
            fut = pipe.inflight
            if fut is not None and not fut.done():  # receive meanwhile, do not block on it
                await asyncio.wait((asyncio.wrap_future(fut),))
            t0 = time.perf_counter()
            results = pipe.store(checked)  # the previous batch's results, this one's COMMIT
            self.metrics.batch_seconds.observe(spent + time.perf_counter() - t0)
            self._publish_results(results)
            await asyncio.sleep(0)  # its acks leave, and what arrived is read, before the next

    async def _arrival(self, timeout: float) -> bool:
        """Wait until a reading arrives (True) or `timeout` passes (False)."""
        waiting = self._arrived = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            return False
        finally:
            self._arrived = None
        return True

    def _take(self, n: int) -> list[Incoming]:
        """The oldest `n` readings received (all, if fewer), in order."""
        incoming = self._incoming
        if len(incoming) <= n:
            self._incoming = []
            return incoming
        batch = incoming[:n]
        del incoming[:n]
        return batch

    def _publish_results(self, results: list[Result]) -> None:
        for res in results:
            if isinstance(res, StoreFailed):  # not acknowledged: meters resend these readings
                self.metrics.store_errors.inc()
                log.error("store failed, %d readings not acknowledged: %r", res.readings, res.error)
            else:
                self._publish_outcome(res)

    def _send_clock(self, mid: bytes) -> None:
        """The nonce'd clock command with our time (the meter adds how long it took to verify
        it). The meter uses its nonce up when it applies one and then publishes the next (its
        refresh status replaces it here); until then the nonce is kept, so a command that never
        reached the meter is sent again at its next reading from the future (it once was not,
        and the meter's clock stayed an hour ahead). A second command with a nonce already used
        is refused by the meter: at most one applies."""
        nonce = self._nonces.get(mid)
        if nonce is not None:
            self._send_cmd(mid, "clock", round(clock.now()), nonce)

    def _publish_outcome(self, out: BatchOutcome) -> None:
        for rej in out.rejections:
            self.metrics.rejected.labels(rej.reason.value).inc()
            self._rejection_log.log(rej.reason.value, rej.meter_hex, rej.seq, rej.detail)
            if (
                rej.reason == Reason.FUTURE
                and (mid := bytes.fromhex(rej.meter_hex)) in self._nonces
            ):
                if self._clock_fixes.allow(mid):  # its clock runs ahead of ours: set it back
                    log.info("meter %s signs readings from the future: setting its clock back",
                             rej.meter_hex)  # fmt: skip
                    self._send_clock(mid)
        for mid, n in out.counts.items():
            self.metrics.accepted.labels(mid.hex()).inc(n)
        for mid, (upto, h) in out.acks.items():  # after COMMIT, by construction of ingest()
            self._send_ack(mid, upto, h)
        for mid, from_seq in out.resends.items():
            log.info("gap from meter %s: asking it to resend from seq %d", mid.hex(), from_seq)
            self._send_cmd(mid, "resend", from_seq)
            self.metrics.resends.inc()
        if self.bridge is not None:
            for mid, record in out.last.items():
                if self.cfg.homeassistant.enabled and mid not in self._discovered:
                    self._publish_discovery(mid)
                topic = topics.meter_topic(self.cfg.site, mid.hex(), "state")
                reading = rc.decode(record)[0]
                self.bridge.publish(topic, discovery.meter_state(reading), retain=True)

    def _publish(self, topic: str, payload: bytes) -> None:
        if self.bridge is not None:
            self.bridge.publish(topic, payload)

    def _send_ack(self, mid: bytes, upto: int, h: bytes) -> None:
        if self.bridge is None:
            return
        payload = messages.encode_ack(self.site_key, mid, upto, h)
        self.bridge.publish(topics.meter_topic(self.cfg.site, mid.hex(), "ack"), payload)
        self.metrics.acks.inc()

    def _send_cmd(self, mid: bytes, op: str, arg: int, nonce: bytes = b"") -> None:
        if self.bridge is None:
            return
        payload = messages.encode_cmd(self.site_key, mid, op, arg, nonce)
        self.bridge.publish(topics.meter_topic(self.cfg.site, mid.hex(), "cmd"), payload)

    def _publish_discovery(self, mid: bytes) -> None:
        if self.bridge is None or not self.bridge.connected:
            return
        row = self.store.meter(mid)
        label = row.label if row else ""
        for topic, payload in discovery.meter_discovery(
            self.cfg.homeassistant.discovery_prefix, self.cfg.site, mid.hex(), label
        ):
            self.bridge.publish(topic, payload, retain=True)
        self._discovered.add(mid)

    # --- Modbus and watchdog ---------------------------------------------------------------------

    def _on_modbus_values(
        self, device: str, model: str, values: dict[str, float], first: bool
    ) -> None:
        for name, v in values.items():
            self.metrics.modbus_value.labels(device, name).set(v)
        if self.bridge is None:
            return
        if device not in self._modbus_seen:
            self._modbus_seen[device] = model
            if self.cfg.homeassistant.enabled:
                self._publish_modbus_discovery(device, model)
        state = json.dumps({k: round(v, 4) for k, v in values.items()}).encode()
        self.bridge.publish(topics.modbus_state_topic(self.cfg.site, device), state, retain=True)

    def _publish_modbus_discovery(self, device: str, model: str) -> None:
        if self.bridge is None:
            return
        from gateway.modbus.registers import MODELS

        quantities = [(r.name, r.unit) for r in MODELS[model].registers]
        for topic, payload in discovery.modbus_discovery(
            self.cfg.homeassistant.discovery_prefix, self.cfg.site, device, model, quantities
        ):
            self.bridge.publish(topic, payload, retain=True)

    async def _watchdog(self, interval: float) -> None:
        """Ping systemd only while the ingest loop is alive (it beats at least every 0.5 s)."""
        while True:
            if time.monotonic() - self._heartbeat < max(2.0, interval * 2):
                self.notifier.notify("WATCHDOG=1")
            else:
                log.error("ingest loop stalled: withholding the watchdog ping")
            await asyncio.sleep(interval)


def run_gateway(cfg: GatewayConfig) -> None:
    service = GatewayService(cfg)
    asyncio.run(service.run())
