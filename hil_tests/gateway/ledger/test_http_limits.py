"""Issue 16 item 11: idle and stalled connections cost no thread, are bounded and time out.

Before: the stdlib ThreadingHTTPServer held one thread per open connection (600 stalled
connections held 603 threads) and listened with a backlog of 5.
"""

import dataclasses
import json
import socket
import subprocess
import threading
import time

from gateway.ledger import config as ledger_config
from gateway.ledger import service, txs
from gateway.ledger.client import LedgerClient
from hil_tests.gateway.ledger.conftest import ALICE, OPERATOR, write_config

STALLED = b'POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n{"body": '


def _start(tmp_path, **limits):
    config = ledger_config.load(write_config(tmp_path / "node"))
    running = service.start(dataclasses.replace(config, **limits))
    host, port = running.server.server_address[:2]
    return running, (host, port)


def _open(address, count, payload=b""):
    socks = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=10)
        if payload:
            sock.sendall(payload)
        socks.append(sock)
    return socks


def test_hundreds_of_idle_and_stalled_connections_hold_no_thread_and_block_no_request(tmp_path):
    before = threading.active_count()
    running, address = _start(tmp_path, http_workers=8)
    socks = []
    try:
        socks += _open(address, 300)  # connected, silent
        socks += _open(address, 300, STALLED)  # a request head, its body never comes
        client = LedgerClient(running.url, timeout=10, retries=1)
        chain = client.info()["chain"]
        receipt = client.submit(
            txs.make(
                "enroll_participant", chain, participant=ALICE.pubkey, name="a", role="consumer"
            ).signed_by(OPERATOR)
        )
        assert receipt["status"] == "committed"
        # the node's threads: producer, selector, the 8 workers; never one per connection
        assert threading.active_count() - before <= 8 + 4
        assert running.server.thread_count() == 1 + 8
    finally:
        for sock in socks:
            sock.close()
        running.stop()


def test_connections_beyond_the_cap_evict_the_longest_idle_and_a_request_still_succeeds(
    tmp_path,
):
    running, address = _start(tmp_path, max_connections=50)
    try:
        socks = _open(address, 120)
        client = LedgerClient(running.url, timeout=10, retries=1)
        assert client.info()["height"] == 0
        closed = 0
        for sock in socks[:60]:  # the oldest ones were closed to make room
            sock.settimeout(10)
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
        assert closed == 60
        assert running.server.evicted >= 70
    finally:
        for sock in socks:
            sock.close()
        running.stop()


def test_an_idle_connection_is_closed_after_the_idle_timeout(tmp_path):
    running, address = _start(tmp_path, idle_timeout_s=0.3)
    try:
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        sock.settimeout(10)  # generous: only that it is closed at all, by the server
        rest = answer.split(b"\r\n\r\n", 1)[1]
        while (chunk := sock.recv(65536)) != b"":
            rest += chunk
        assert json.loads(rest)["height"] == 0
        assert time.monotonic() - t0 < 10
        sock.close()
    finally:
        running.stop()


def test_the_listen_backlog_is_not_the_default_five(tmp_path):
    running, (_, port) = _start(tmp_path)
    try:
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert int(out[2]) >= 128  # ss shows a listening socket's backlog as its Send-Q
    finally:
        running.stop()


def test_a_batch_of_transactions_is_answered_one_result_each_in_order(ledger):
    ledger.enroll(ALICE, deposit=100)
    good = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=40, nonce=1)
    too_much = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=99, nonce=2)
    results = ledger.client.submit_many(
        [good.signed_by(ALICE), too_much.signed_by(ALICE), good.signed_by(ALICE), {"x": 1}]
    )
    assert results[0]["status"] == "committed" and results[0]["tx_id"] == good.id
    assert results[1].reason == "insufficient_funds" and results[1].tx_id == too_much.id
    assert results[2]["tx_id"] == good.id and results[2]["height"] == results[0]["height"]
    assert results[3].reason == "malformed"
    assert ledger.client.balance(ALICE.pubkey) == 60


def test_a_client_that_expects_100_continue_gets_it_before_sending_its_body(ledger):
    host, port = ledger.running.server.server_address[:2]
    tx = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=1).signed_by(ALICE)
    body = json.dumps(tx.to_json()).encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/tx HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        assert sock.recv(25).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        answer = b""
        while b"unknown_signer" not in answer:
            chunk = sock.recv(65536)
            assert chunk
            answer += chunk
        assert b"HTTP/1.1 422" in answer


def test_the_default_pool_is_small_and_a_bad_size_names_its_key(tmp_path):
    path = write_config(tmp_path / "node")
    config = ledger_config.load(path)
    assert config.http_workers == ledger_config.default_http_workers() < 32
    path.write_text(path.read_text().replace("[ledger]\n", "[ledger]\nhttp_workers = 0\n"))
    try:
        ledger_config.load(path)
    except ledger_config.LedgerConfigError as exc:
        assert "http_workers" in str(exc)
    else:
        raise AssertionError("http_workers = 0 was accepted")
