from __future__ import annotations

import re

from hil_tests.bench import bench_gateway

NUM = r"([\d,]+(?:\.\d+)?)"


def _num(pattern: str, out: str) -> float:
    m = re.search(pattern, out)
    assert m, f"{pattern!r} not in:\n{out}"
    return float(m.group(1).replace(",", ""))


def test_gateway_benchmark_runs_with_tiny_n_and_prints_its_figures(capsys):
    assert (
        bench_gateway.main(
            ["--n", "200", "--meters", "3", "--batch", "50", "--latency-n", "3", "--flood-n", "20"]
        )
        == 0
    )
    out = capsys.readouterr().out
    # the figures exist and are consistent with each other (no timing thresholds)
    verify = _num(NUM + r" verifies/s", out)
    ingest = _num(r"acked \(SQLite WAL FULL, 1 core\):\s+" + NUM + " readings/s", out)
    assert verify > 0 and ingest > 0
    before, after = _num(r"\(before " + NUM, out), _num(r", after " + NUM, out)
    assert min(before, after) - 1 <= verify <= max(before, after) + 1  # their mean
    # one cumulative signed ack per meter per batch: 4 batches of 50 readings from 3 meters
    assert _num(r"(\d+) signed acks", out) == 4 * 3
    share = _num(r"= (\d+)% of the verify ceiling;", out)
    assert abs(share - round(100 * ingest / verify)) <= 1
    p50, p95, worst = (
        _num(r"p50 " + NUM + " ms", out),
        _num(r"p95 " + NUM + " ms", out),
        _num(r"max " + NUM + " ms", out),
    )
    assert 0 < p50 <= p95 <= worst
    assert _num(r"flood of 20 from \d+ meters\): " + NUM + " readings/s", out) > 0
    assert "of the in-process rate" in out
