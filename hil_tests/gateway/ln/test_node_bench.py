"""CI variant of the channel benchmark: tiny N; the run itself checks that every payment
succeeded and moved exactly its amount; here its printed figures must be present and coherent."""

from __future__ import annotations

import re

import pytest

from hil_tests.bench import bench_channels

NUM = r"(\d+(?:\.\d+)?)"


def test_bench_channels_runs_and_prints(capsys):
    bench_channels.main(["--payments", "40", "--latency", "5", "--rounds", "2"])
    out = capsys.readouterr().out
    rounds = re.findall(
        r"(\d+) payments/s over one channel \((\d+) payments in (\d+) commitments\), "
        + NUM
        + " fsyncs/payment",
        out,
    )
    assert len(rounds) == 2, out  # decoded requests, then BOLT-11 receipts
    for rate, payments, commitments, fsyncs in rounds:
        assert int(rate) > 0 and int(payments) == 40
        assert 1 <= int(commitments) <= 2 * 40  # batched: never more than a round per update
        assert float(fsyncs) > 0
    share = re.search(r"BOLT-11 rate = (\d+)% of the decoded-request rate", out)
    assert share and int(share.group(1)) > 0, out
    node = re.search(r"in the payer node .*: p50 " + NUM + r" ms, p99 " + NUM + " ms", out)
    cli = re.search(
        r"at the CLI client .*: p50 " + NUM + r" ms, p99 " + NUM + r" ms over (\d+)", out
    )
    assert node and cli, out
    assert 0 < float(node.group(1)) <= float(node.group(2))
    assert 0 < float(cli.group(1)) <= float(cli.group(2)) and int(cli.group(3)) == 5
    assert float(node.group(1)) <= float(cli.group(2))  # the client sees at least the node's time
    fsyncs = re.search(NUM + r" fsyncs/payment \(3 nodes\)", out)
    assert fsyncs, out
    # the timeline: the median payment's critical path names at least one commit and never more
    # than the nodes made in the whole measured run. Its own payment makes COMMITS_ON_PATH in a
    # row; fewer are named when its forward waited for the previous payment's fulfil round
    # before the payer's request (the walk names that "wait for the previous payment's last
    # round"), more when rounds on alice-bob ran after the request (a loaded fresh CI run's
    # median named 9: four alice<->bob exchanges, then its own hops)
    path = re.search(r"timeline of the median payment \(" + NUM + r" ms, (\d+) store commits", out)
    assert path, out
    assert 1 <= int(path.group(2)) <= round(float(fsyncs.group(1)) * int(cli.group(3))), out
    # the mean over all payments crosses between the nodes whatever the median's path was
    assert "store commit (fsync)" in out and "encrypt, write, wake-up (wire)" in out, out
    if int(path.group(2)) > 1:  # a path that names the hops (a fresh CI run's median did not)
        assert "alice->bob" in out and "carol->bob" in out, out
    assert "the slowest 1 payment(s) spend more than the middle half on" in out, out


def _marks(node: str, *steps: tuple[float, str, str]) -> list[dict]:
    return [{"t_ns": int(t * 1e6), "what": w, "detail": d} for t, w, d in steps]


def test_the_critical_path_crosses_to_the_sender_at_each_read_and_sums_to_the_latency():
    from hil_tests.bench import two_hop_timeline as tl

    shorts = {"aaaaaaaaaaaa": "a", "bbbbbbbbbbbb": "b"}
    marks = tl.merge(
        {
            "a": _marks(
                "a",
                (1.0, "api", "pay"),
                (1.5, "react", ""),
                (1.6, "commit", ""),
                (2.0, "committed", ""),
                (2.1, "send", "1 to bbbbbbbbbbbb"),
                (2.2, "read", "1 from cccccccccccc"),  # another peer, not on the path
                (4.0, "read", "1 from bbbbbbbbbbbb"),
                (4.1, "recv", "AckBatch from bbbbbbbbbbbb"),
                (4.3, "handled", "AckBatch from bbbbbbbbbbbb"),
                (4.4, "react", ""),
                (4.5, "paid", "x"),
                (4.6, "api_done", "pay"),
            ),
            "b": _marks(
                "b",
                (2.5, "read", "1 from aaaaaaaaaaaa"),
                (2.6, "recv", "UpdateBatch from aaaaaaaaaaaa"),
                (3.0, "handled", "UpdateBatch from aaaaaaaaaaaa"),
                (3.1, "react", ""),
                (3.2, "commit", ""),
                (3.7, "committed", ""),
                (3.8, "send", "1 to aaaaaaaaaaaa"),
            ),
        }
    )
    path = tl.critical_path(marks, shorts, "a", 0, 10**9)
    assert [s.node for s in path][:6] == ["a", "a", "a", "a", "a->b", "b"]
    assert path[0].label == tl.PROPOSE and path[4].label.endswith("(wire)")
    assert sum(s.ms for s in path) == pytest.approx(3.6)  # api at 1.0 -> api_done at 4.6
    assert sum(s.ms for s in path if s.label == "store commit (fsync)") == pytest.approx(0.9)
    assert tl.breakdown([path])[0][0] == "store commit (fsync)"


def test_the_tail_excess_names_what_the_slowest_payments_spend_more_on():
    from hil_tests.bench import two_hop_timeline as tl

    def path(commit_ms: float, wire_ms: float) -> list:
        commit = int(commit_ms * 1e6)
        return [
            tl.Step("a", 0, commit, "store commit (fsync)"),
            tl.Step("a->b", commit, commit + int(wire_ms * 1e6), "encrypt, write, wake-up (wire)"),
        ]

    paths = [path(0.5, 0.1), path(0.6, 0.1), path(0.5, 0.2), path(0.7, 3.1)]
    rows = tl.tail_excess(paths)
    assert rows[0][0] == "encrypt, write, wake-up (wire)"
    assert rows[0][1] == pytest.approx(3.1 - 0.15)  # the slowest one against the middle two
    assert rows[1] == ("a: store commit (fsync)", pytest.approx(0.7 - 0.55))
