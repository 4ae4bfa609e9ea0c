"""The rule that keeps sgcore's crypto safe from the emulated board's GC defect.

MicroPython puts a function's frame on the heap when its state (locals + stack, 4 bytes a
slot, plus 8 bytes an exception handler) exceeds 44 bytes; the WASI build's GC cannot see
such a frame and frees it while it runs (boards/emulated/host/wasm.py). Generator frames live
in the generator object and are safe, so the heavy loops are generators and every plain
function must stay small. The sizes are read from real MicroPython's own compiler (-v -v).
"""

import ast
import re

import pytest

from boards.emulated.host.wasm import MicroPythonVM
from hil_tests import REPO_ROOT

SGCORE = REPO_ROOT / "firmware" / "lib" / "sgcore"
MODULES = [
    "hmac_sha256",
    "rfc6979",
    "secp256k1",
    "secp256k1_arith",
    "secp256k1_keytable",
    "secp256k1_table",
    "secp256k1_table_builder",
    "secp256k1_wnaf",
    "signing",
]
MAX_STATE_BYTES = 44  # py/objfun.c: VM_MAX_STATE_ON_STACK = 11 * sizeof(mp_uint_t)


def _frame_sizes(source: str) -> list[tuple[str, int]]:
    out = (
        MicroPythonVM()
        ._run(["micropython", "-v", "-v", "-c", f"compile({source!r}, 'x', 'exec')"])
        .stdout
    )
    blocks = re.finditer(
        r"File x, code block '([^']+)'.*?\(N_STATE (\d+)\)\n\(N_EXC_STACK (\d+)\)", out, re.S
    )
    return [(m.group(1), int(m.group(2)) * 4 + int(m.group(3)) * 8) for m in blocks]


def _generators(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(node)
        ):
            names.add(node.name)
    return names


@pytest.mark.parametrize("module", MODULES)
def test_plain_functions_keep_their_frames_off_the_heap(module):
    source = (SGCORE / f"{module}.py").read_text()
    sizes = _frame_sizes(source)
    assert len(sizes) > 3  # the compiler's dump was parsed
    generators = _generators(source)
    too_big = [
        (name, size) for name, size in sizes if size > MAX_STATE_BYTES and name not in generators
    ]
    assert not too_big, f"frames that would live on the heap: {too_big}"


def test_the_rule_detects_a_large_frame():
    source = "def big(a, b, c, d, e, f, g, h, i, j, k, l):\n    return a\n"
    assert dict(_frame_sizes(source))["big"] > MAX_STATE_BYTES


def test_the_crypto_bench_collects_only_from_small_frames():
    # Its guest calls gc.collect() at module level: that frame must stay off the heap too.
    from hil_tests.bench.bench_crypto import GUEST

    sizes = _frame_sizes("CASES = []\n" + GUEST)
    assert [name for name, size in sizes if size > MAX_STATE_BYTES] == []
