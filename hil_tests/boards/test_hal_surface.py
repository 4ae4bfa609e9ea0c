import ast
from pathlib import Path

import pytest

from boards.hal_surface import ATTRIBUTES, METHODS
from hil_tests import REPO_ROOT

BOARD_HALS = sorted(REPO_ROOT.glob("boards/*/device/hal.py"))


def _classes(path: Path) -> dict[str, ast.ClassDef]:
    tree = ast.parse(path.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _board_class(path: Path) -> list[ast.ClassDef]:
    """The board's Board class and the classes it builds on, from the board's own HAL and the
    shared HAL modules its board.json names (`hal_common`)."""
    import json

    known = _classes(path)
    common = json.loads((path.parent.parent / "board.json").read_text()).get("hal_common")
    if common:
        for shared in sorted((REPO_ROOT / "boards" / common / "device").glob("*.py")):
            known = {**_classes(shared), **known}
    assert "Board" in known, f"{path}: no class Board"
    chain, todo = [], ["Board"]
    while todo:
        cls = known[todo.pop()]
        chain.append(cls)
        todo += [b.id for b in cls.bases if isinstance(b, ast.Name) and b.id in known]
    return chain


def _surface(chain: list[ast.ClassDef]) -> tuple[set[str], set[str]]:
    methods = {
        n.name
        for cls in chain
        for n in cls.body
        if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
    }
    attrs = {
        t.id
        for cls in chain
        for n in cls.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    for node in (node for cls in chain for node in ast.walk(cls)):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                ):
                    attrs.add(t.attr)
    return methods, attrs


def test_every_real_and_emulated_board_is_checked():
    names = {p.parent.parent.name for p in BOARD_HALS}
    assert {"emulated", "esp32_devkitc", "esp32c3_plug"} <= names


@pytest.mark.parametrize("hal", BOARD_HALS, ids=lambda p: p.parent.parent.name)
def test_board_exposes_the_whole_hal_surface(hal):
    methods, attrs = _surface(_board_class(hal))
    assert not set(METHODS) - methods, f"missing methods: {sorted(set(METHODS) - methods)}"
    assert not set(ATTRIBUTES) - attrs, f"missing attributes: {sorted(set(ATTRIBUTES) - attrs)}"


@pytest.mark.parametrize("hal", BOARD_HALS, ids=lambda p: p.parent.parent.name)
def test_board_has_no_public_extras_beyond_the_surface(hal):
    methods, _ = _surface(_board_class(hal))
    assert methods <= set(METHODS), f"undeclared HAL methods: {sorted(methods - set(METHODS))}"


@pytest.mark.parametrize("board", sorted(p.parent.parent for p in BOARD_HALS), ids=lambda p: p.name)
def test_board_folder_describes_itself_as_data(board):
    import json

    info = json.loads((board / "board.json").read_text())
    assert {"id", "name", "mcu", "features", "calibration"} <= info.keys()
    assert info["id"] == board.name
    lines = (board / "pins.csv").read_text().splitlines()
    data = [line for line in lines if not line.startswith("#")]  # "#" lines: the map's source
    assert data[0].startswith("name,")
    if info["mcu"] not in ("esp32 (emulated)",) and board.name != "esp32_devkitc":
        assert any("source" in line.lower() for line in lines if line.startswith("#")), (
            "cite where the pin map comes from in pins.csv's header"
        )
