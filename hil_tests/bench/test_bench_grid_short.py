"""The grid bench in short: two payments through three real nodes; the figures are produced."""

from hil_tests.bench import bench_grid


def test_bench_grid_short(tmp_path):
    r = bench_grid.run(payments=2, workdir=tmp_path)
    assert r["payments"] == 2
    assert 0 < r["close_p50_s"] <= r["close_max_s"]
    assert r["anchor_batches"] >= 1 and r["anchored_readings"] >= 1
    assert r["proof_bytes_1"] < r["proof_bytes_1000"] < r["proof_bytes_4096"]
    assert r["floor_p50_s"] > 0 and r["ratio_to_floor"] > 0
