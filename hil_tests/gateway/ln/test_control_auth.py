"""The control API is closed to callers without the node's token, to browsers (foreign Origin,
non-JSON bodies) and refuses malformed bodies with 400 (issue 16 items 7 and 12)."""

from __future__ import annotations

import http.client
import json
import os
import stat
import time

import pytest

from gateway.ln.errors import LnError
from gateway.ln.node.control import call
from hil_tests.gateway.ln.node_procs import Grid, NodeProc

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("gateway.ln.test_control_auth")

M = 1_000_000


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    g = Grid(tmp_path_factory.mktemp("auth"))
    try:
        a, b = g.add("alice"), g.add("bob")
        a.connect(b)
        a.api("/open", {"node_id": b.node_id, "amount_msat": 50 * M})
        yield a, b
    finally:
        g.close()


def _raw(node: NodeProc, method: str, path: str, body: bytes, headers: dict[str, str]):
    port = int(node.url.rsplit(":", 1)[1])
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        con.request(method, path, body=body, headers=headers)
        resp = con.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        con.close()


def _token(node: NodeProc) -> str:
    return open(node.token_file).read().strip()


def test_a_stranger_cannot_pay_or_force_close(pair):
    # reproduces issue 16 item 7: text/plain, a foreign Origin, no credentials
    a, b = pair
    invoice = b.invoice(M)[0]
    browser = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    status, _ = _raw(a, "POST", "/pay", json.dumps({"invoice": invoice}).encode(), browser)
    assert status == 401
    ch = a.channel_with(b)
    body = json.dumps({"channel_id": ch["channel_id"], "force": True}).encode()
    status, _ = _raw(a, "POST", "/close", body, {"Content-Type": "application/json"})
    assert status == 401
    wrong = {"Content-Type": "application/json", "Authorization": "Bearer " + "0" * 64}
    assert _raw(a, "POST", "/close", body, wrong)[0] == 401
    assert _raw(a, "GET", "/channels", b"", {})[0] == 401
    after = a.channel_with(b)
    assert after["state"] == "OPEN" and after["local_msat"] == ch["local_msat"]


def test_with_the_token_browsers_are_still_refused(pair):
    a, b = pair
    auth = {"Authorization": "Bearer " + _token(a)}
    invoice = json.dumps({"invoice": b.invoice(M)[0]}).encode()
    before = a.channel_with(b)["local_msat"]
    status, out = _raw(a, "POST", "/pay", invoice, {**auth, "Content-Type": "text/plain"})
    assert status == 415 and "application/json" in out["error"]
    foreign = {**auth, "Content-Type": "application/json", "Origin": "http://evil.example"}
    status, out = _raw(a, "POST", "/pay", invoice, foreign)
    assert status == 403 and "origin" in out["error"]
    rebound = {**auth, "Content-Type": "application/json", "Host": "evil.example:9736"}
    assert _raw(a, "POST", "/pay", invoice, rebound)[0] == 403
    assert a.channel_with(b)["local_msat"] == before
    paid = _raw(a, "POST", "/pay", invoice, {**auth, "Content-Type": "application/json"})
    assert paid[0] == 200 and paid[1]["status"] == "succeeded"


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"[1]", "JSON object"),
        (b"[" * 200_000, "nested too deeply"),
        (b"{" * 50 + b"}" * 50, "not JSON"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "deeper"),
        (b'"text"', "JSON object"),
        (b"\xff\xfe", "not JSON"),
        (b"null", "JSON object"),
    ],
)
def test_malformed_bodies_get_400_with_the_reason(pair, body, reason):
    a, b = pair
    headers = {"Authorization": "Bearer " + _token(a), "Content-Type": "application/json"}
    for path in ("/pay", "/invoice", "/close", "/connect"):
        status, out = _raw(a, "POST", path, body, headers)
        assert status == 400, (path, status, out)
        assert reason in out["error"]
    assert a.channel_with(b)["state"] == "OPEN"


def test_bad_values_in_a_json_object_get_400_too(pair):
    a, _ = pair
    headers = {"Authorization": "Bearer " + _token(a), "Content-Type": "application/json"}
    for path, body in (
        ("/invoice", {"amount_msat": [], "start": 1, "end": 2}),
        ("/pay", {"requests": 5}),
        ("/pay", {"requests": [[1, 2, 3]]}),
        ("/close", {"channel_id": {"x": 1}}),
        ("/connect", {"port": "x", "node_id": "zz"}),
        ("/payment", {"payment_hash": None}),
        ("/open", {"node_id": "00", "amount_msat": -1}),
        ("/pay", {"invoice": float("nan")}),  # found by bench_fuzz: was a 500
        ("/pay", {"invoices": [1]}),
        ("/invoice", {"amount_msat": 1, "start": 1, "end": 2, "kwh": 1, "count": 10**8}),
        ("/close", {"channel_id": "00", "force": True, "extra": 1}),
    ):
        status, out = _raw(a, "POST", path, json.dumps(body).encode(), headers)
        assert status == 400, (path, status, out)


def test_the_token_file_is_private_and_a_readable_one_is_refused(pair, tmp_path):
    a, _ = pair
    assert stat.S_IMODE(os.stat(a.token_file).st_mode) == 0o600
    leaked = tmp_path / "token"
    leaked.write_text(_token(a))
    leaked.chmod(0o644)
    with pytest.raises(LnError, match="readable by others"):
        call(a.url, "/info", token_file=str(leaked))
    assert call(a.url, "/info", token_file=a.token_file)["node_id"] == a.node_id


def test_refusals_are_logged_rate_limited(pair):
    a, _ = pair
    log = a.data_dir / "node.log"
    before = log.read_text().count("control API refused")
    t0 = time.monotonic()
    for _ in range(200):
        _raw(a, "POST", "/pay", b"[1]", {"Content-Type": "application/json"})
    elapsed = time.monotonic() - t0
    logged = log.read_text().count("control API refused") - before
    # 10 lines per 10 s window (RejectionLog): the 200 requests span at most this many windows
    # (one more if an earlier window is still open); a loaded machine may take > 10 s for them
    windows = int(elapsed // 10) + 2
    assert 1 <= logged <= 10 * windows, f"{logged} lines in {elapsed:.1f} s"


def test_the_cli_looks_for_the_token_where_the_installed_grid_node_writes_it():
    """`sgrid pay` on the gateway finds the token with no --token-file: the default is the data
    dir of the example production config (state_dir + node.data_dir) + control_token."""
    import tomllib

    from gateway.config import parse_config
    from gateway.ln.cli.node_options import TOKEN_FILE_DEFAULT
    from gateway.ln.node.control_guard import TOKEN_FILE
    from hil_tests import REPO_ROOT

    raw = tomllib.loads((REPO_ROOT / "gateway/examples/grid/consumer.toml").read_text())
    cfg = parse_config(raw)
    assert cfg.grid is not None
    assert TOKEN_FILE_DEFAULT == str(cfg.grid.node.data_dir / TOKEN_FILE)
