from __future__ import annotations

import re

from hil_tests.bench import bench_gateway

NUM = r"([\d,]+(?:\.\d+)?)"


def _num(pattern: str, out: str) -> float:
    m = re.search(pattern, out)
    assert m, f"{pattern!r} not in:\n{out}"
    return float(m.group(1).replace(",", ""))


def _spread(label: str, unit: str, out: str) -> tuple[float, float, float]:
    """(median, min, max) printed after `label`."""
    m = re.search(
        re.escape(label) + r".*?median " + NUM + unit + r" \(min " + NUM + unit + r", max "
        + NUM + unit + r"\)",
        out,
    )  # fmt: skip
    assert m, f"{label!r} not in:\n{out}"
    return tuple(float(g.replace(",", "")) for g in m.groups())  # type: ignore[return-value]


def test_gateway_benchmark_runs_with_tiny_n_and_prints_its_figures(capsys):
    assert (
        bench_gateway.main(
            [
                "--n",
                "200",
                "--meters",
                "3",
                "--batch",
                "50",
                "--reps",
                "2",
                "--latency-n",
                "3",
                "--flood-n",
                "30",
                "--flood-meters",
                "3",
                "--floods",
                "2",
            ]
        )  # fmt: skip
        == 0
    )
    out = capsys.readouterr().out
    # the figures exist and are consistent with each other (no timing thresholds)
    for label, unit in [
        ("raw libsecp256k1 verify", ""),
        ("verified + stored + acked", ""),
        ("run by run:", "%"),
        ("by wall clock,", "%"),
        ("from 3 meters):", ""),
    ]:
        median, low, high = _spread(label, unit, out)
        assert 0 < low <= median <= high, (label, out)
    # one cumulative signed ack per meter per batch: 4 batches of 50 readings from 3 meters
    assert _num(r"(\d+) signed acks a run", out) == 4 * 3
    verify_us, ingest_us = _num(r"verify " + NUM + " us", out), _num(r"ingest " + NUM + " us", out)
    rest = _num(r"the rest: (-?[\d.]+) us", out)
    assert verify_us > 0 and ingest_us > 0 and abs(ingest_us - verify_us - rest) < 0.11
    # the breakdown beyond the verify adds up, and its ratio is the verify's share of the whole
    stage_verify, beyond = (
        _num(r"batch\): verify " + NUM + " us", out),
        _num(r"beyond it " + NUM, out),
    )
    parts = [_num(name + " " + NUM, out) for name in ("check", "write", "commit", "acks")]
    assert all(p >= 0 for p in parts[1:]) and _num("checkpoint " + NUM, out) >= 0
    assert abs(sum(parts) + _num("checkpoint " + NUM, out) - beyond) < 0.3
    ratio = _num(r"batch by batch: " + NUM + "%", out)
    assert abs(ratio - 100 * stage_verify / (stage_verify + beyond)) < 1.5
    p50, p95, worst = (
        _num(r"p50 " + NUM + " ms", out),
        _num(r"p95 " + NUM + " ms", out),
        _num(r"max " + NUM + " ms", out),
    )
    assert 0 < p50 <= p95 <= worst
    assert "2 floods of 30 from 3 meters" in out and "of the in-process rate" in out
    gateway, loop = (
        _num(r"gateway " + NUM + r" \(loop thread", out),
        _num(r"loop thread " + NUM, out),
    )
    assert 0 <= loop <= gateway  # the loop thread is part of the gateway
