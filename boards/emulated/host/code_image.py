"""What an emulated board boots: the heap its firmware image's code takes once imported, and the
real board (a folder of boards/) whose calibration, pins and features it plays."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from boards.emulated.host.wasm import MicroPythonVM, Mount

REPO = Path(__file__).resolve().parents[3]


_CODE_RAM_PROBE = """
import gc, os, sys
gc.disable()
sys.path[:] = ["/rom/lib", "/rom"]
gc.collect()
a0 = gc.mem_alloc()
for name in sorted(os.listdir("/rom/lib")):
    if name.endswith(".mpy") and name not in ("boot.mpy", "main.mpy"):
        __import__(name[:-4])
for name in sorted(os.listdir("/rom/lib/sgcore")):
    if name.endswith(".mpy"):
        __import__("sgcore." + name[:-4])
gc.collect()
print(gc.mem_alloc() - a0)
"""


def code_ram_bytes(rom_dir: Path, cache: Path | None = None) -> int:
    """Heap that the image's modules take once imported (bytecode, functions, constants).

    A real ESP32 runs this firmware frozen into flash (boards/esp32_devkitc/manifest.py), where
    that code costs no heap; this build can only load .mpy files into its heap. So the emulated
    board gets this much heap on top of its data heap, and reports data-heap figures net of it.
    Measured once per image (cached next to it).
    """
    digest = hashlib.sha256()
    for p in sorted(rom_dir.rglob("*.mpy")):
        digest.update(p.name.encode() + p.read_bytes())
    cache = cache or rom_dir / ".code_ram.json"
    try:
        cached = json.loads(cache.read_text())
        if cached["digest"] == digest.hexdigest():
            return int(cached["bytes"])
    except (OSError, ValueError, KeyError):
        pass
    vm = MicroPythonVM(mounts=[Mount(rom_dir, "/rom")], heap_bytes=1024 * 1024)
    out = vm.run_code(_CODE_RAM_PROBE)
    if out.exit_code != 0:
        raise RuntimeError(f"cannot import the firmware image: {out.stderr.strip()[-400:]}")
    size = int(out.stdout.split()[-1])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"digest": digest.hexdigest(), "bytes": size}))
    os.replace(tmp, cache)
    return size


def load_profile(name: str) -> dict[str, Any]:
    """The board.json of the real board the emulated one plays (`--board-profile`): its
    calibration, its pins (reported in `state`) and its features (a line it lacks, such as
    the S0 input of a smart plug, cannot be driven)."""
    path = REPO / "boards" / name / "board.json"
    if not path.is_file():
        known = sorted(p.parent.name for p in (REPO / "boards").glob("*/board.json"))
        raise ValueError(f"unknown board profile {name!r} (known: {', '.join(known)})")
    info = json.loads(path.read_text())
    return {
        "calibration": info["calibration"],
        "features": info["features"],
        "pins": info.get("pins", {}),
        "mcu": info["mcu"],
    }
