"""`sgrid flash` and `sgrid provision --port` end to end on an emulated board, through its console
pty and the real mpremote: the image is copied onto the flash and boots, the config is written,
the meter publishes signed readings to a real mosquitto, and its public key comes back over the
REPL."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import time

import coincurve
import paho.mqtt.client as mqtt
import pytest

from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker, mosquitto_available
from hil_tests.rig.flash_reader import pubkey_from_console
from sgcore import reading as rd

pytestmark = pytest.mark.needs("mosquitto", mosquitto_available())

ISSUER = coincurve.PrivateKey(b"\x07" * 32).public_key.format().hex()


def sgrid(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=timeout
    )


def test_flash_then_provision_over_the_console_and_the_meter_publishes_signed_readings(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    board = BoardProcess(tmp_path / "flash", board_id="plug-1", clock=VirtualClock(speed=60.0))
    try:
        board.start()
        board.expect("meter ready")
        port = str(board.state()["console"])
        assert board.state()["image"] == "rom"

        out = sgrid("flash", "--board", "emulated", "--port", port)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "flashed emulated on" in out.stdout
        assert (board.flash_dir / "main.py").is_file()
        assert (board.flash_dir / "lib" / "meter_app.mpy").is_file()
        board.expect("meter ready", timeout=60)  # rebooted into the image now on its flash
        assert board.state()["image"] == "flash"

        out = sgrid(
            "provision", "--port", port, "--site", "bench", "--broker", f"127.0.0.1:{broker.port}",
            "--issuer-pubkey", ISSUER, "--set", "interval_s=60", "--set", "checkpoint_s=10",
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        pubkey = bytes.fromhex(re.search(r"meter public key ([0-9a-f]{66})", out.stdout)[1])
        assert pubkey == pubkey_from_console(board.console)  # the same key the meter printed

        got: queue.Queue[bytes] = queue.Queue()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        sub.on_message = lambda _c, _u, msg: got.put(msg.payload)
        sub.connect(broker.host, broker.port)
        sub.subscribe("sg/bench/+/reading", qos=1)
        sub.loop_start()
        try:
            board.expect("meter ready", timeout=60)  # booted with the new config
            deadline = time.monotonic() + 60
            record = b""
            while time.monotonic() < deadline:
                board.pulses(20)
                try:
                    record = got.get(timeout=1.0)
                    break
                except queue.Empty:
                    continue
            assert record, "no reading published"
        finally:
            sub.loop_stop()
            sub.disconnect()
        reading, body, sig = rd.decode(record)
        assert reading.meter_id == rd.meter_id_from_pubkey(pubkey)
        der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
        assert coincurve.PublicKey(pubkey).verify(der, rd.digest(body), hasher=None)
    finally:
        board.stop()
        broker.stop()


def test_flash_refuses_a_board_whose_chip_is_not_the_one_asked_for(tmp_path):
    board = BoardProcess(tmp_path / "flash", board_id="wrong-1")
    try:
        board.start()
        board.expect("meter ready")
        out = sgrid("flash", "--board", "esp32_devkitc", "--port", str(board.state()["console"]))
        assert out.returncode == 1
        assert "wrong chip on" in out.stderr and "board esp32_devkitc needs esp32" in out.stderr
        assert not (board.flash_dir / "main.py").exists()  # nothing was copied
    finally:
        board.stop()
