"""`LedgerPort.submit_many` on each ledger the node can run on (gateway/ln/node/ledger_*.py): the
transactions of one call are recorded together (MemoryLedger and FileLedger: in one block, as
the real ledger puts one `POST /v1/txs` in one block when it fits), each is refused on its own
with its reason, one recorded before is not refused (idempotent), and an outage refuses them
all as "unavailable". The watch claims the HTLC outputs of a tick this way."""

from __future__ import annotations

import pytest

from gateway.ln.channel.commitment import sign
from gateway.ln.channel.ledger_bodies import digest, funding_body
from gateway.ln.node.keys import NodeKeys
from gateway.ln.node.ledger_file import FileLedger
from gateway.ln.node.ledger_http import HttpLedger
from gateway.ln.node.ledger_port import MemoryLedger, Signed
from hil_tests.gateway.ln.channel_pair import node_keys
from hil_tests.gateway.ln.real_ledger import RealLedger

A, B = node_keys("alice"), node_keys("bob")
M = 1_000_000


def _fund(chain: str, nonce: str, amounts=(10 * M, 10 * M), signers=(A, B)) -> Signed:
    body = funding_body(chain, A.node_id, B.node_id, amounts, nonce)
    return body, {k.node_id.hex(): sign(k.node_priv, digest(body)).hex() for k in signers}


def _check(ledger, height) -> None:  # noqa: ANN001 - any LedgerPort
    chain = ledger.chain
    good, other = _fund(chain, "one"), _fund(chain, "two")
    unsigned = _fund(chain, "three", signers=(A,))  # bob's signature missing
    before = height()
    results = ledger.submit_many([good, unsigned, other, good])
    assert results[0] is None and results[2] is None and results[3] is None  # the same tx twice
    assert results[1] is not None and results[1].reason != "unavailable"
    for body, _ in (good, other):
        view = ledger.channel(digest(body))
        assert view is not None and view.status == "open"
    assert ledger.channel(digest(unsigned[0])) is None
    assert height() == before + 1  # one block
    assert ledger.submit_many([good]) == [None]  # recorded before
    assert ledger.submit_many([]) == []


def _deposit(ledger: MemoryLedger | FileLedger, keys: tuple[NodeKeys, ...]) -> None:
    for k in keys:
        ledger.deposit(k.node_id, 100 * M)


def test_memory_ledger(tmp_path):
    led = MemoryLedger()
    _deposit(led, (A, B))
    _check(led, led.height)


def test_file_ledger(tmp_path):
    led = FileLedger(tmp_path / "ledger.sqlite")
    _deposit(led, (A, B))
    _check(led, led.height)


@pytest.fixture
def real(tmp_path):
    led = RealLedger(tmp_path / "ledger")
    try:
        yield led
    finally:
        led.stop()


def test_the_real_ledger_over_http(real):
    for name, k in (("alice", A), ("bob", B)):
        real.enroll(k.node_id.hex(), name)
    led = HttpLedger(real.url)
    chain = led.chain
    good, other = _fund(chain, "one"), _fund(chain, "two")
    unsigned = _fund(chain, "three", signers=(A,))
    results = led.submit_many([good, unsigned, other])
    assert results[0] is None and results[2] is None
    assert results[1] is not None and results[1].reason != "unavailable"
    heights = {real.client.channel(digest(b).hex())["fund_height"] for b, _ in (good, other)}
    assert len(heights) == 1  # one request, one block
    assert led.submit_many([good]) == [None]  # recorded before
    real.stop()
    down = led.submit_many([other, unsigned])
    assert [e.reason if e else None for e in down] == ["unavailable"] * 2
