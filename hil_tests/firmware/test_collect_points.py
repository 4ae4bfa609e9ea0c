"""Garbage is collected only at a module's top level on the device side (docs/emulated-board.md).

The emulated board's MicroPython (WASI) cannot see a running function's frame once it is on the
heap (more than 11 words of state, as Uplink.poll's), so a gc.collect() inside a function frees
that frame under its feet: an attempt to collect in the uplink before each issuer-table slice
ended in a wasm trap ("out of bounds memory access"). On an ESP32 it would work, so only this
rule keeps such a collection out: device code collects in main.py's loop (or boot.py's) only.
"""

import ast

from hil_tests import REPO_ROOT

DEVICE_SOURCES = sorted(
    [*(REPO_ROOT / "firmware").rglob("*.py"), *(REPO_ROOT / "boards").glob("*/device/*.py")]
)


def _collects_inside_functions(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr == "collect"
                ):
                    lines.append(inner.lineno)
    return lines


def test_device_code_collects_only_at_module_level():
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in DEVICE_SOURCES
        for line in _collects_inside_functions(path.read_text())
    ]
    assert offenders == []


def test_the_rule_sees_a_collection_in_a_method():
    source = "import gc\nclass U:\n    def poll(self):\n        gc.collect()\n"
    assert _collects_inside_functions(source) == [4]
    assert DEVICE_SOURCES and any(p.name == "main.py" for p in DEVICE_SOURCES)
