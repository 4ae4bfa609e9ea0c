"""CI variant of the channel benchmark: tiny N, checks only that it completes and prints."""

from __future__ import annotations

from hil_tests.bench import bench_channels


def test_bench_channels_runs_and_prints(capsys):
    bench_channels.main(["--payments", "40", "--latency", "5"])
    out = capsys.readouterr().out
    assert "payments/s" in out and "2-hop latency in the payer node" in out
    assert "p50" in out and "fsyncs/payment" in out
    assert "% of the decoded-request rate" in out
