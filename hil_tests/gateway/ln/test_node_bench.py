"""CI variant of the channel benchmark: tiny N; the run itself checks that every payment
succeeded and moved exactly its amount; here its printed figures must be present and coherent."""

from __future__ import annotations

import re

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
    assert re.search(NUM + r" fsyncs/payment \(3 nodes\)", out), out
