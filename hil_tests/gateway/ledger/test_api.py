"""The HTTP surface itself: typed errors, the OpenAPI description, the CLI against a real node."""

import json
import re
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from gateway.ledger import txs
from gateway.ledger.cli import ledger as ledger_cli
from hil_tests.gateway.ledger.conftest import ALICE, OPERATOR


def _post(url, data: bytes):
    request = urllib.request.Request(url + "/v1/tx", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_not_json_is_a_400_and_a_refusal_is_a_typed_422(ledger):
    url = ledger.running.url
    status, body = _post(url, b"{nope")
    assert status == 400 and body["error"]["reason"] == "malformed"
    tx = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=1).signed_by(ALICE)
    status, body = _post(url, json.dumps(tx.to_json()).encode())
    assert status == 422 and body["error"] == {
        "reason": "unknown_signer",
        "detail": body["error"]["detail"],
        "tx_id": tx.id,
    }


def test_stats_count_the_blocks_and_the_time_spent_committing_them(ledger):
    before = json.loads(urllib.request.urlopen(ledger.running.url + "/v1/stats").read())
    height0 = ledger.client.info()["height"]
    ledger.enroll(ALICE, deposit=10)  # two transactions
    after = json.loads(urllib.request.urlopen(ledger.running.url + "/v1/stats").read())
    assert after["mode"] == "embedded"
    assert after["txs"] - before["txs"] == 2
    assert after["blocks"] - before["blocks"] == ledger.client.info()["height"] - height0 >= 1
    assert after["commit_s"] > before["commit_s"] and after["check_s"] > before["check_s"]


def test_every_documented_path_is_served(ledger):
    ledger.enroll(ALICE, deposit=10)
    spec = json.loads(urllib.request.urlopen(ledger.running.url + "/openapi.json").read())
    examples = {
        "{id}": "00" * 32,
        "{height}": "0",
        "{pubkey}": ALICE.pubkey,
        "{meter}": "00" * 16,
        "{market_id}": "x",
    }
    EXISTING = {"{height}", "{pubkey}"}  # block 0 and ALICE's account exist
    for path, methods in spec["paths"].items():
        if "get" not in methods:
            continue
        concrete = path
        for name, value in examples.items():
            concrete = concrete.replace(name, value)
        try:
            status = urllib.request.urlopen(ledger.running.url + concrete, timeout=10).status
            detail = ""
        except urllib.error.HTTPError as exc:
            status, detail = exc.code, json.loads(exc.read())["error"]["detail"]
        if all(name in EXISTING for name in re.findall(r"\{\w+\}", path)):
            # no parameter, or one naming an object that exists: the route must answer it
            assert status == 200, (path, status, detail)
        else:
            assert status in (200, 404), path
            assert status == 200 or "404" in methods["get"]["responses"], path
        # a 404 must come from the route itself (object missing), not from "no such route"
        assert not detail.startswith("no route"), (path, detail)


def test_cli_keygen_writes_a_private_key(tmp_path):
    result = CliRunner().invoke(ledger_cli, ["keygen", str(tmp_path / "k.key")])
    assert result.exit_code == 0 and len(result.output.strip()) == 66
    assert (tmp_path / "k.key").stat().st_mode & 0o077 == 0


def test_cli_prove_and_verify_proof_round_trip(ledger, tmp_path):
    from hil_tests.gateway.ledger.test_transactions import METER, _record

    ledger.enroll(ALICE, role="gateway")
    ledger.submit(
        txs.make("enroll_meter", ledger.chain, meter=METER.pubkey, owner=ALICE.pubkey).signed_by(
            OPERATOR
        )
    )
    records = [_record(METER, s) for s in range(5)]
    from gateway.ledger import proofs

    anchor = txs.make(
        "anchor", ledger.chain, submitter=ALICE.pubkey, batch="", **proofs.anchor_fields(records)
    )
    receipt = ledger.submit(anchor.signed_by(ALICE))
    (tmp_path / "batch.bin").write_bytes(b"".join(records))
    (tmp_path / "txproof.json").write_text(json.dumps(ledger.client.tx_proof(receipt["tx_id"])))
    runner = CliRunner()
    made = runner.invoke(
        ledger_cli,
        [
            "prove",
            "--records",
            str(tmp_path / "batch.bin"),
            "--index",
            "3",
            "--tx-proof",
            str(tmp_path / "txproof.json"),
        ],
    )
    assert made.exit_code == 0, made.output
    (tmp_path / "proof.json").write_text(made.output)
    validator = ledger.client.info()["validator"]
    checked = runner.invoke(
        ledger_cli, ["verify-proof", str(tmp_path / "proof.json"), "--validator", validator]
    )
    assert checked.exit_code == 0 and "seq 3" in checked.output, checked.output
    wrong = runner.invoke(
        ledger_cli, ["verify-proof", str(tmp_path / "proof.json"), "--validator", OPERATOR.pubkey]
    )
    assert wrong.exit_code == 1 and "validator" in wrong.output


@pytest.mark.parametrize("index", ["-1", "5"])
def test_cli_prove_refuses_an_index_outside_the_batch(ledger, tmp_path, index):
    from hil_tests.gateway.ledger.test_transactions import METER, _record

    (tmp_path / "batch.bin").write_bytes(b"".join(_record(METER, s) for s in range(5)))
    (tmp_path / "txproof.json").write_text("{}")
    result = CliRunner().invoke(
        ledger_cli,
        [
            "prove",
            "--records",
            str(tmp_path / "batch.bin"),
            "--index",
            index,
            "--tx-proof",
            str(tmp_path / "txproof.json"),
        ],
    )
    assert result.exit_code == 1 and "outside" in result.output


def test_hostile_bodies_get_a_400_and_the_node_keeps_serving(ledger):
    url = ledger.running.url
    assert _post(url, b"[" * 100_000 + b"]" * 100_000)[0] == 400
    status, body = _post(url, json.dumps({"body": [], "sigs": {}}).encode())
    assert status == 422 and body["error"]["reason"] == "malformed"
    deep = {"body": {"kind": "deposit", "x": [[[[[[[[[[1]]]]]]]]]]}, "sigs": {}}
    assert _post(url, json.dumps(deep).encode())[1]["error"]["reason"] == "malformed"
    assert ledger.client.info()["height"] == 0


def test_run_with_an_incomplete_config_fails_clearly(tmp_path):
    config = tmp_path / "ledger.toml"
    config.write_text('[ledger]\nname = "x"\ngenesis_time_ms = 0\n')
    result = CliRunner().invoke(ledger_cli, ["run", "--config", str(config)])
    assert result.exit_code == 1 and "missing ledger.operator" in result.output


@pytest.mark.parametrize("data", [b"null", b"[1]", b'"tx"', b"7", b"[" * 200_000, b"\xff"])
def test_a_body_that_is_not_one_json_object_gets_400_with_the_reason(ledger, data):
    # `null` went unanswered (the handler took it for "already refused"): the client hung
    status, body = _post(ledger.running.url, data)
    assert status == 400 and body["error"]["reason"] == "malformed", body
    assert body["error"]["detail"]
    for path in ("/v1/tx", "/v1/txs"):
        request = urllib.request.Request(ledger.running.url + path, data=data, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == 400
    assert ledger.client.info()["height"] == 0
