"""The sim bench in short: the smallest grid for a quarter of a virtual hour; the figures it
prints are present and coherent (no timing thresholds)."""

import json
import os

import pytest
from rich.console import Console

from hil_tests.bench import bench_sim


@pytest.mark.timeout(900)  # the grid's bring-up alone takes minutes on a loaded 2-core machine
def test_bench_sim_short(tmp_path, capsys):
    fixed = {**bench_sim.FIXED, "pv": 1}  # the smallest grid: one of each kind, one household
    nodes = sum(fixed.values()) + 2
    r = bench_sim.bench_one(nodes, hours=0.25, speed=480, workdir=tmp_path / "sim",
                            console=Console(quiet=True), fixed=fixed)  # fmt: skip
    bench_sim.print_figures([r])
    out = capsys.readouterr().out
    assert "error" not in r, r.get("traceback")
    printed = json.loads(next(ln for ln in out.splitlines() if ln.startswith("FIGURES "))[8:])
    assert printed == {k: v for k, v in r.items() if k != "traceback"}
    for col in ("bring-up s", "run s", "day s", "boards/core", "board MiB p50", "gw MiB max"):
        assert col in out
    assert r["homes"] == 1 and r["boards"] == nodes - 1
    assert r["boards_per_core"] == round((nodes - 1) / (os.cpu_count() or 1), 1)
    assert 0 < r["bringup_s"] and 0 < r["run_s"] < r["wall_s"]
    assert r["day_wall_s"] == round(r["run_s"] * 96, 1)
    assert r["rss_samples"] >= 2
    assert 0 < r["board_rss_median_mib"] <= r["board_rss_max_mib"] < 500
    assert 0 < r["gateway_rss_median_mib"] <= r["gateway_rss_max_mib"] < 500
    floor = (nodes - 1) * r["board_rss_median_mib"] + nodes * r["gateway_rss_median_mib"]
    assert floor * 0.8 <= r["peak_total_rss_mib"] < 500 * 2 * nodes
    assert r["invariants"] > 0
    assert r["all_invariants_hold"], r["invariants_failed"]
