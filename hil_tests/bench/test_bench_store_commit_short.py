from pathlib import Path

from hil_tests.bench import store_commit


def test_store_commit_bench_runs_and_reports_each_part(tmp_path: Path, capsys) -> None:
    r = store_commit.main(["--payments", "3", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "WAL appended (no checkpoint)" in out and "WAL reused" in out
    assert "bare pwrite + fdatasync" in out and "without I/O" in out
    # four commits a payment, each writing the channel's document: at least one WAL frame
    assert len(r["appended"]["total"]) == len(r["reused"]["total"]) == 12
    assert min(r["appended"]["frames"]) >= 1
    for part in ("doc", "sql", "begin", "commit"):
        assert all(0 < t for t in r["reused"][part])
    assert list(tmp_path.iterdir()) == []  # its files are gone
