from hil_tests.bench import bench_board


def test_board_bench_runs_and_reports_figures(capsys):
    r = bench_board.main(["--boards", "1", "--seconds", "1"])
    out = capsys.readouterr().out
    assert "boot time" in out and "RSS per board" in out
    assert 0 < r["heap_peak_bytes_max"] < 110 * 1024
