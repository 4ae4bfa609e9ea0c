"""A whole site on the bench: a real mosquitto, a real gateway process, emulated meters.

Start-up follows provisioning on a real site: the gateway makes its site key, every meter gets a
config with the broker and the site's public key, each meter makes its own key at first boot
and prints its public key, the installer enrolls those keys at the gateway, then the gateway runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from boards.emulated.host.vclock import VirtualClock
from gateway import clock
from gateway.credit.issuer import TokenIssuer
from gateway.crypto import SiteKey
from hil_tests.gateway.gateway_proc import GatewayProcess, write_config
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker
from hil_tests.rig.flash_reader import pubkey_from_console
from hil_tests.rig.stored_readings import stored_rows
from sgcore import topics
from sgcore.reading import meter_id_from_pubkey
from tools.build import build
from tools.provision import KEY_TABLE, write_key_table

GATEWAY_CLI = [sys.executable, "-m", "gateway.service"]


@dataclass
class Meter:
    name: str
    board: BoardProcess
    pubkey: bytes = b""

    @property
    def meter_id(self) -> bytes:
        return meter_id_from_pubkey(self.pubkey)


@dataclass
class Site:
    workdir: Path
    site: str = "bench"
    speed: float = 1.0
    meter_config: dict[str, dict] = field(default_factory=dict)  # name -> config.json overrides
    meter_uarts: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {"meter": tty}
    meters: dict[str, Meter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clock = VirtualClock(speed=self.speed)
        self.broker = Broker(self.workdir / "broker")
        self.gateway: GatewayProcess | None = None
        self._pub: mqtt.Client | None = None

    # --- bring-up ------------------------------------------------------------------------------

    def start(self) -> Site:
        self.broker.start()
        gw_dir = self.workdir / "gateway"
        gw_dir.mkdir(exist_ok=True)
        self.gateway_config, self.metrics_port = write_config(gw_dir, self.broker, self.site)
        self.site_pubkey = bytes.fromhex(self._gateway_cli("site-key").strip().split()[-1])
        rom = build("emulated")
        for name, overrides in self.meter_config.items():
            flash = self.workdir / name / "flash"
            flash.mkdir(parents=True, exist_ok=True)
            cfg = {
                "site": self.site,
                "broker_port": self.broker.port,
                "issuer_pubkey": self.site_pubkey.hex(),
                **overrides,
            }
            (flash / "config.json").write_text(json.dumps(cfg))
            write_key_table(flash / KEY_TABLE, self.site_pubkey)  # as tools/provision.py does
            board = BoardProcess(
                flash_dir=flash,
                board_id=name,
                run_dir=self.workdir / name,
                clock=self.clock,
                rom_dir=rom,
                uarts=self.meter_uarts.get(name, {}),
            )
            self.meters[name] = Meter(name, board)
            board.start(wait_banner=False)
        for m in self.meters.values():
            m.board.expect("meter ready", timeout=60)
            m.pubkey = pubkey_from_console(m.board.console)
            self._gateway_cli("enroll-meter", "--pubkey", m.pubkey.hex(), "--label", m.name)
        c = self.clock  # the gateway tells meters the time: the rig's (virtual) time
        self.gateway = GatewayProcess(
            self.gateway_config,
            self.broker,
            self.site,
            extra_env=clock.env_for(c.speed, c.real_t0, c.virtual_t0 or c.real_t0),
        )
        self.gateway.wait_online()
        return self

    def _gateway_cli(self, *args: str) -> str:
        out = subprocess.run(
            [*GATEWAY_CLI, *args, "--config", str(self.gateway_config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"sgrid gateway {args[0]} failed: {out.stderr[-800:]}")
        return out.stdout

    def stop(self) -> None:
        for m in self.meters.values():
            m.board.stop()
        if self.gateway is not None:
            self.gateway.close()
        if self._pub is not None:
            self._pub.loop_stop()
            self._pub.disconnect()
        self.broker.stop()

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the site does ---------------------------------------------------------------------

    def issuer(self) -> TokenIssuer:
        state = self.gateway_config.parent / "state"
        return TokenIssuer(SiteKey.load(state / "site.key"), state / "tokens.sqlite3")

    def publish(self, topic: str, payload: bytes) -> None:
        if self._pub is None:
            self._pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            self._pub.connect(self.broker.host, self.broker.port)
            self._pub.loop_start()
        self._pub.publish(topic, payload, qos=1).wait_for_publish(10)

    def send_token(self, meter: Meter, token: bytes) -> None:
        self.publish(topics.meter_topic(self.site, meter.meter_id.hex(), "token"), token)

    def stored(self, meter: Meter) -> list[dict[str, Any]]:
        """The readings the gateway stored for a meter (read-only view of its database)."""
        db = self.gateway_config.parent / "state" / "readings.sqlite3"
        return stored_rows(db, meter.meter_id)

    def wait_stored(self, meter: Meter, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.stored(meter)
            if len(rows) >= n:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{meter.name}: {len(rows)} of {n} readings stored\n"
                    + "\n".join(meter.board.console[-10:])
                )
            time.sleep(0.2)
