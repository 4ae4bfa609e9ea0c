"""CI variant of hil_tests/bench/bench_modbus.py: a few requests, checks that it runs and prints."""

from hil_tests.bench import bench_modbus


def test_modbus_bench_runs_and_prints_its_figures(capsys):
    r = bench_modbus.main(["--requests", "3"])
    out = capsys.readouterr().out
    assert "fuel per request" in out and "heap allocated per request" in out
    assert r["requests"] == 3 and r["fuel_per_request"] > 0
    assert 0 < r["heap_peak_bytes"] < 110 * 1024
