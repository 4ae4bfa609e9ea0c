"""The sim bench in short: the smallest grid for a quarter of a virtual hour; the figures it
prints are present and coherent (no timing thresholds). Run as a process, as a person runs it."""

import json
import os
import subprocess
import sys

import pytest

from hil_tests import REPO_ROOT
from hil_tests.bench import bench_sim


@pytest.mark.timeout(1200)  # the grid's bring-up alone takes minutes on a loaded 2-core machine
def test_bench_sim_short(tmp_path):
    nodes = sum(bench_sim.FIXED.values()) + 2  # one household
    done = subprocess.run([sys.executable, "-m", "hil_tests.bench.bench_sim", "--nodes",
                           str(nodes), "--hours", "0.25", "--workdir", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1100)  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(next(ln for ln in out.splitlines() if ln.startswith("FIGURES "))[8:])
    assert "error" not in r, r
    for col in ("bring-up s", "run s", "after s", "day wall s", "boards/core", "board MiB p50",
                "gw MiB max", "board cores"):  # fmt: skip
        assert col in out
    assert r["homes"] == 1 and r["boards"] == nodes - 1
    assert r["boards_per_core"] == round((nodes - 1) / (os.cpu_count() or 1), 1)
    assert 0 < r["bringup_s"] and 0 < r["run_s"] < r["wall_s"]
    assert r["post_s"] == round(r["wall_s"] - r["bringup_s"] - r["run_s"], 1)
    assert r["day_wall_s"] == round(r["wall_s"] + (86400 - 900) / r["speed"], 1)
    assert r["rss_samples"] >= 2
    assert 0 < r["board_cpu_share"] < 2 and 0 < r["gateway_cpu_share"] < 2
    assert list(r["bringup_phases_s"])[-2:] == ["channels along the feeder", "meters ready"]
    assert 0 < r["board_rss_median_mib"] <= r["board_rss_max_mib"] < 500
    assert 0 < r["gateway_rss_median_mib"] <= r["gateway_rss_max_mib"] < 500
    floor = (nodes - 1) * r["board_rss_median_mib"] + nodes * r["gateway_rss_median_mib"]
    assert floor * 0.8 <= r["peak_total_rss_mib"] < 500 * 2 * nodes
    # reported, not judged here (hil_tests/rig/test_sim_*.py judge them): the figures agree
    assert r["invariants"] > 0
    assert r["all_invariants_hold"] == (not r["invariants_failed"])
    assert set(r["failed_details"]) == set(r["invariants_failed"])
