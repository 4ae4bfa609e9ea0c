from hil_tests.bench import bench_ledger
from hil_tests.gateway.ledger.etcd_cluster import ETCD


def test_ledger_bench_runs_and_reports_figures(capsys):
    modes = "embedded,replicated" if ETCD else "embedded"
    results = bench_ledger.main(
        [
            "--n",
            "40",
            "--concurrency",
            "2",
            "--reads",
            "5",
            "--batches",
            "1,4",
            "--modes",
            modes,
            "--ceiling-txs",
            "200",
        ]
    )
    out = capsys.readouterr().out
    assert "tx/s" in out and "proof p50" in out and "verification ceiling" in out
    assert "of ceiling" in out
    assert "goal embedded >= 5,000 tx/s" in out  # met or not: a figure, never a threshold here
    assert ("goal replicated >= 2,000 tx/s" in out) == bool(ETCD)
    assert {name.split("/")[1] for name in results} == {"1", "4"}
    for figures in results.values():
        assert figures["txs"] == (40 if figures["batch"] > 1 else 10)
        assert figures["tps"] > 0 and figures["proof_p99_ms"] > 0
        assert 0 < figures["ceiling_share"]
