"""`sgrid market auction ...`, `settle`, `feeder`, `coalition`, `topology` as a user runs them."""

import json

from click.testing import CliRunner

from gateway.cli import main
from gateway.market.forecast import windows
from hil_tests.gateway.ledger.conftest import ALICE, BOB, OPERATOR, ledger  # noqa: F401
from hil_tests.gateway.market import day as d

START = 1774098000


def _key(tmp_path, key):
    path = tmp_path / f"{key.pubkey[:8]}.key"
    path.write_text(key.secret_hex())
    return str(path)


def _run(*args):
    return CliRunner().invoke(main, ["market", *args])


def test_the_seed003_auction_runs_from_the_command_line(tmp_path, ledger):  # noqa: F811
    ledger.enroll(ALICE)
    ledger.enroll(BOB)
    url = [
        "--ledger",
        ledger.client.urls[0] if hasattr(ledger.client, "urls") else ledger.running.url,
    ]
    op, alice, bob = _key(tmp_path, OPERATOR), _key(tmp_path, ALICE), _key(tmp_path, BOB)
    steps = [
        ["auction", "open", "L1", "--start", str(START), "--end", str(START + 3600), "--key", op],
        [
            "auction",
            "offer",
            "L1",
            "--wh",
            "1500",
            "--reserve-msat-per-kwh",
            "100000",
            "--key",
            alice,
        ],
        ["auction", "bid", "L1", "--wh", "800", "--bid-msat-per-kwh", "150000", "--key", bob],
        ["auction", "close", "L1", "--key", op],
    ]
    for step in steps:
        out = _run(*step, *url)
        assert out.exit_code == 0, out.output
        assert "committed" in out.output
    shown = json.loads(_run("auction", "show", "L1", *url).stdout)
    assert shown["state"] == "AUCTION_CLOSED"
    assert [(t["wh"], t["amount_msat"], t["seller"], t["buyer"]) for t in shown["trades"]] == [
        (800, 120_000, ALICE.pubkey, BOB.pubkey)
    ]
    again = _run("auction", "bid", "L1", "--wh", "1", "--bid-msat-per-kwh", "1", "--key", bob, *url)
    assert again.exit_code == 1 and "listing_closed" in again.output


def test_settle_reads_the_reading_store_and_records_the_hash(tmp_path, ledger):  # noqa: F811
    (w,) = windows(d.DAY, 1)
    meters = d.Meters(tmp_path / "readings.sqlite3", ["pv-1", "home-1"])
    meters.record(w, {"pv-1": 900, "home-1": -1100})
    meters.close()
    trades = {
        "trades": [
            {"seller": "pv-1", "buyer": "home-1", "wh": 1000, "amount_msat": 150_000, "loss_wh": 20}
        ]
    }
    (tmp_path / "trades.json").write_text(json.dumps(trades))
    args = [
        "settle", "--readings", str(tmp_path / "readings.sqlite3"), "--trades", str(tmp_path / "trades.json"),
        "--start", str(w.start), "--end", str(w.end), "--imbalance-price-msat-per-kwh", "200000",
        "--pod", "pod", "--csv", str(tmp_path / "s.csv"), "--record", "--key", _key(tmp_path, OPERATOR),
        "--ledger", ledger.running.url,
    ]  # fmt: skip
    out = _run(*args)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout.splitlines()[0])
    assert doc["money_created_msat"] == 0
    by = {s["node"]: s for s in doc["statements"]}
    assert by["pv-1"]["imbalance_msat"] == -24_000 and by["home-1"]["imbalance_msat"] == -20_000
    assert ledger.client.settlement(doc["period_id"])["statements_hash"] == doc["hash"]
    assert (tmp_path / "s.csv").read_text().count("\n") == 4
    bad = {"trades": [{"seller": "pv-1", "buyer": "home-1", "wh": 1.5, "amount_msat": 1}]}
    (tmp_path / "trades.json").write_text(json.dumps(bad))
    out = _run(*args[: args.index("--csv")])
    assert out.exit_code == 2 and "trades[0].wh" in out.stderr


def test_coalition_and_topology_and_feeder_commands(tmp_path):
    book = {
        "slot": {"start": 0, "end": 900},
        "offers": [{"id": "o1", "node": "a", "wh": 3000, "price_msat_per_kwh": 80000, "time": 0},
                   {"id": "o2", "node": "b", "wh": 1000, "price_msat_per_kwh": 90000, "time": 0}],
        "bids": [{"id": "b1", "node": "h", "wh": 2000, "price_msat_per_kwh": 200000, "time": 0},
                 {"id": "b2", "node": "k", "wh": 3000, "price_msat_per_kwh": 120000, "time": 0}],
    }  # fmt: skip
    (tmp_path / "book.json").write_text(json.dumps(book))
    out = _run(
        "coalition",
        str(tmp_path / "book.json"),
        "--cap-msat-per-kwh",
        "150000",
        "--tariff-msat-per-kwh",
        "250000",
    )
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert (
        r["price_msat_per_kwh"] == 105_000
        and sum(s["revenue_msat"] for s in r["shares"]) == r["revenue_msat"]
    )
    out = _run(
        "coalition",
        str(tmp_path / "book.json"),
        "--cap-msat-per-kwh",
        "300000",
        "--tariff-msat-per-kwh",
        "250000",
    )
    assert out.exit_code == 2
    out = _run(
        "topology", "a", "b", "h", "k", "--branches", "2", "-o", str(tmp_path / "feeder.json")
    )
    assert out.exit_code == 0, out.output
    assert len(json.loads((tmp_path / "feeder.json").read_text())["buses"]) == 5
    out = _run("feeder", str(tmp_path / "feeder.json"), str(tmp_path / "book.json"))
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert r["feeder"]["feasible"] and all("loss_wh" in t for t in r["trades"])
    out = _run("topology", "a", "b", "--std-type", "NAYY 9x9", "-o", str(tmp_path / "odd.json"))
    out = _run("feeder", str(tmp_path / "odd.json"), str(tmp_path / "book.json"))
    assert (
        out.exit_code == 2 and "lines[0].std_type" in out.stderr and "Traceback" not in out.output
    )
    (tmp_path / "feeder.json").write_text("{}")
    out = _run("feeder", str(tmp_path / "feeder.json"), str(tmp_path / "book.json"))
    assert out.exit_code == 2 and "name" in out.stderr
