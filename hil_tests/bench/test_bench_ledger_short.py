from hil_tests.bench import bench_ledger
from hil_tests.ledger.etcd_cluster import ETCD


def test_ledger_bench_runs_and_reports_figures(capsys):
    modes = "embedded,replicated" if ETCD else "embedded"
    results = bench_ledger.main(
        ["--n", "20", "--concurrency", "2", "--reads", "5", "--modes", modes]
    )
    out = capsys.readouterr().out
    assert "tx/s" in out and "proof p50" in out
    for figures in results.values():
        assert figures["txs"] == 20 and figures["tps"] > 0 and figures["proof_p99_ms"] > 0
