from gateway.market import mechanisms
from hil_tests.bench import bench_market


def test_market_bench_runs_and_reports_figures(capsys):
    results = bench_market.main(
        ["--sizes", "200,1000", "--repeat", "1", "--flows", "3", "--slots", "6"]
    )
    out = capsys.readouterr().out
    assert "ceiling" in out and "power flows/s" in out and "feasibility loop" in out
    assert set(results["clearing"]) == {f"{n}/{m}" for n in (200, 1000) for m in mechanisms.NAMES}
    for figures in results["clearing"].values():
        assert figures["seconds"] > 0 and figures["trades"] > 0 and figures["ceiling_ratio"] > 0
    feeder = results["feeder"]
    assert feeder["dorfnetz_flows_per_s"] > 0
    assert (
        feeder["flows_per_s_recycled"] > 0 and feeder["loop_worst_s"] >= feeder["loop_mean_s"] > 0
    )
