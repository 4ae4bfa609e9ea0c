"""What `sgrid sim` shows fits where it is shown: in a pipe, plain lines of at most 80 columns
(no markup eaten, nothing wrapped mid-record by the console); on a terminal, a live view no
wider and no taller than the terminal, for the default grid and for 50 nodes. The view reads a
real Driver of a real (not started) SimGrid."""

import io
import re

import pytest
from rich.console import Console

from hil_tests.rig import microgrid, profiles
from hil_tests.rig.sim.driver import Driver
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.view import View, say

DAY0 = profiles.day_start(profiles.Site())


@pytest.fixture(scope="module", params=[4, 45], ids=["10 nodes", "50 nodes"])
def driver(request, tmp_path_factory):
    grid = microgrid.build(homes=request.param, site=profiles.Site())
    sg = SimGrid(grid, tmp_path_factory.mktemp("view"), speed=480)
    d = Driver(sg)
    # a day's worth of large figures: the widest numbers a day of 50 nodes shows
    for i, name in enumerate(sg.nodes):
        d.truth[name].import_wh = 123_456.0 + i
        d.truth[name].export_wh = 98_765.0
        d.truth[name].unserved_wh = 10_800.0
        d.power_w[name] = -11_000.0
        d.relay[name] = i % 2
    d.pod_truth.import_wh, d.pod_truth.export_wh, d.loss_wh = 987_654.0, 876_543.0, 12_345.0
    yield d
    sg.stop()


def _lines(out: io.StringIO) -> list[str]:
    return [re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", ln) for ln in out.getvalue().splitlines()]


def test_in_a_pipe_every_line_fits_80_columns_and_keeps_its_stamp(driver):
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)  # a wide pipe: still 80
    view = View(console, driver, DAY0, DAY0 + 86400)
    with view:
        for h in range(0, 24 * 3600 + 1, 1800):
            view.tick(DAY0 + h)
        view.event("home-12's gateway SIGKILLed (gateway-kill): restarting it once its meter "
                   "has published two readings the gateway must not lose")  # fmt: skip
    log = _lines(out)
    assert all(ln.startswith("[sim ") or ln.startswith("    ") for ln in log)
    say(console, "report: /a/rather/long/work/dir/" + "x" * 120 + "/report.html (PNGs beside it)")
    lines = _lines(out)
    assert max(len(ln) for ln in lines) <= 80, max(lines, key=len)
    progress = [ln for ln in lines if ln.startswith("[sim ") and "% kWh: grid" in ln]
    assert len(progress) == 25  # one per virtual hour, the stamp not eaten as markup
    assert progress[0].startswith("[sim 00:00]   0% kWh: grid +987.7/-876.5 loss 12.35 ")
    assert "[sim " in progress[-1] and "100%" in progress[-1]
    event = next(i for i, ln in enumerate(lines) if "SIGKILLed" in ln)
    assert lines[event + 1].startswith("    ")  # a continuation, indented
    assert "\x1b" not in out.getvalue()  # no colour codes in a log


@pytest.mark.parametrize("size", [(80, 24), (50, 15), (120, 40), (80, 60)])
def test_on_a_terminal_the_live_view_fits_its_width_and_height(driver, size):
    width, height = size
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, force_terminal=True,
                      color_system=None, legacy_windows=False)  # fmt: skip
    view = View(console, driver, DAY0, DAY0 + 86400)
    for i in range(5):
        view.events.append(f"10:0{i} event number {i} " + "with a long explanation " * 6)
    view.tick(DAY0 + 36000)  # not live here: it prints the plain line, dropped
    out.seek(0)
    out.truncate()
    console.print(view.render(DAY0 + 36000))
    lines = _lines(out)
    assert len(lines) < height, "\n".join(lines)
    assert max(len(ln) for ln in lines) <= width, max(lines, key=len)
    text = out.getvalue()
    nodes = list(driver.sg.nodes)
    assert nodes[0] in text and "virtual 10:00" in text
    shown = [n for n in nodes if re.search(rf"^{n} ", text, re.M)]
    more = re.search(r"… (\d+) more", text)
    assert len(shown) + (int(more[1]) if more else 0) == len(nodes)  # the rest is counted
    if more:  # the POD, producers, EV and critical load come first; only homes are summed up
        assert {"pod", "pv-1", "battery-1", "ev-1", "clinic-1"} <= set(shown)
        hidden = [n for n in nodes if n not in shown]
        summed = sum(driver.truth[n].import_wh for n in hidden) / 1000
        row = text.split("more", 1)[1].splitlines()[0]
        if width >= 60:  # the narrow view drops "kind" and "out kWh", not "in kWh"
            assert f"{summed:.1f}" in row and "closed" in row, row
    if height >= 40 and len(nodes) < 30:
        assert not more  # room for every node
    assert "event number 4" in text and "event number 1" not in text  # the last three
