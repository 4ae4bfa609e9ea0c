from hil_tests.bench import bench_gateway


def test_gateway_benchmark_runs_with_tiny_n_and_prints_its_figures(capsys):
    assert (
        bench_gateway.main(
            ["--n", "200", "--meters", "3", "--batch", "50", "--latency-n", "3", "--flood-n", "20"]
        )
        == 0
    )
    out = capsys.readouterr().out
    for figure in ("verifies/s", "readings/s", "p50", "flood of 20", "of the in-process rate"):
        assert figure in out
