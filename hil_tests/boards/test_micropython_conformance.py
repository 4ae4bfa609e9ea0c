"""Device-side code must be MicroPython for an ESP32: it compiles with mpy-cross for xtensawin
and imports only what an ESP32 build (plus our own firmware modules) provides."""

import ast
from pathlib import Path

import pytest

from boards.device_modules import EMULATED_EXTRA, ESP32_MODULES
from hil_tests import REPO_ROOT
from tools.build import compile_one

FIRMWARE_LIB = REPO_ROOT / "firmware" / "lib"
DEVICE_FILES = sorted(
    [p for p in (REPO_ROOT / "firmware").rglob("*.py") if p.name != "manifest.py"]
    + list(REPO_ROOT.glob("boards/*/device/*.py"))
)
OWN_MODULES = (
    {p.stem for p in FIRMWARE_LIB.glob("*.py")}
    | {p.name for p in FIRMWARE_LIB.iterdir() if p.is_dir()}
    | {"hal", "main"}
    | {p.stem for p in REPO_ROOT.glob("boards/*_common/device/*.py")}  # shared HAL parts
)


def _ids(p: Path) -> str:
    return str(p.relative_to(REPO_ROOT))


def test_device_files_are_found():
    assert any(p.name == "main.py" for p in DEVICE_FILES)
    assert len(DEVICE_FILES) >= 5


# The real boards' architectures (esp32_devkitc, esp32c3_plug): -march makes mpy-cross check the
# code against each target.
MARCHES = ("rv32imc", "xtensawin")


@pytest.mark.parametrize("march", MARCHES)
@pytest.mark.parametrize("source", DEVICE_FILES, ids=_ids)
def test_compiles_for_both_real_architectures(source, march, tmp_path):
    compile_one(source, tmp_path / "out.mpy", march)
    header = (tmp_path / "out.mpy").read_bytes()[:4]
    assert header[:2] == b"M\x06"  # .mpy version 6 (MicroPython >= 1.22)


@pytest.mark.parametrize("source", DEVICE_FILES, ids=_ids)
def test_imports_only_modules_an_esp32_has(source):
    allowed = ESP32_MODULES | OWN_MODULES | {p.stem for p in source.parent.glob("*.py")}
    if "boards/emulated/device" in str(source):
        allowed |= EMULATED_EXTRA
    bad = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        bad += [n for n in names if n.split(".")[0] not in allowed]
    assert not bad, f"{_ids(source)} imports modules an ESP32 build lacks: {bad}"


@pytest.mark.parametrize("source", DEVICE_FILES, ids=_ids)
def test_no_native_code_emitters(source):
    # @micropython.native/viper would compile for the ESP32 but cannot run on the emulated board.
    text = source.read_text()
    assert "@micropython.native" not in text and "@micropython.viper" not in text
