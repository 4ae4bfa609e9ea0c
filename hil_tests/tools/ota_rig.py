"""An emulated meter provisioned for updates, a real mosquitto, and release images to offer it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import coincurve

from boards.emulated.host.vclock import VirtualClock
from gateway.crypto import SiteKey
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker
from tools.build import build, compile_one
from tools.ota import Bundle, make_bundle

SITE = "ota-site"
ISSUER = coincurve.PrivateKey(b"\x07" * 32).public_key.format().hex()


REPO = Path(__file__).resolve().parents[2]


def release_image(tmp: Path, version: str, broken: bool = False, offline: bool = False) -> Path:
    """The emulated image as a release of `version` (its fwinfo says so); `broken`: one whose
    meter_app cannot be imported; `offline`: one that never reaches the broker."""
    image = tmp / f"image-{version}"
    if not image.exists():
        shutil.copytree(build("emulated"), image)
        src = tmp / f"fwinfo-{version}.py"
        src.write_text(f'FIRMWARE_VERSION = "{version}"\nFIRMWARE_NAME = "seamless-grid-meter"\n')
        compile_one(src, image / "lib" / "fwinfo.mpy", None)
        if broken:
            bad = tmp / "meter_app_broken.py"
            bad.write_text('raise ImportError("a release that cannot start")\n')
            compile_one(bad, image / "lib" / "meter_app.mpy", None)
        if offline:
            src = (REPO / "firmware" / "lib" / "mqtt_link.py").read_text()
            marker = (
                "            self._sock = self._connect(self.host, self.port, self.timeout_ms)\n"
            )
            assert marker in src
            cut = tmp / "mqtt_link_offline.py"
            cut.write_text(
                src.replace(marker, '            raise OSError("no network in this release")\n')
            )
            compile_one(cut, image / "lib" / "mqtt_link.mpy", None)
    return image


@dataclass
class OtaRig:
    tmp: Path
    broker: Broker
    board: BoardProcess
    key: SiteKey

    def bundle(self, version: str, board: str = "emulated", key: SiteKey | None = None,
               broken: bool = False, offline: bool = False) -> Bundle:  # fmt: skip
        image = release_image(self.tmp, version, broken, offline)
        return make_bundle(image, board, version, key or self.key)

    def ota_state(self) -> dict:
        path = self.board.flash_dir / "ota" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}


def start_rig(tmp: Path, speed: float = 10.0, **config: object) -> OtaRig:
    key = SiteKey.load_or_create(tmp / "release.key")
    broker = Broker(tmp / "broker").start()
    flash = tmp / "flash"
    flash.mkdir(parents=True)
    cfg = {
        "site": SITE,
        "broker_port": broker.port,
        "issuer_pubkey": ISSUER,
        "release_pubkey": key.pubkey.hex(),
        "interval_s": 60,
        "checkpoint_s": 10,
        **config,
    }
    (flash / "config.json").write_text(json.dumps(cfg))
    board = BoardProcess(flash, board_id="ota-1", clock=VirtualClock(speed=speed))
    board.start()
    board.expect("meter ready")
    return OtaRig(tmp, broker, board, key)
