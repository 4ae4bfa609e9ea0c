"""`channel_supersede`: a later counterparty-signed state replaces the published one while the
dispute window runs (docs/ledger-api.md §3). Real keys and the real rules."""

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.ledger import config as ledger_config
from gateway.ledger import rules, txs
from gateway.ledger.canonical import digest
from gateway.ledger.chain import Chain, Receipt
from gateway.ledger.cli import ledger as ledger_cli
from gateway.ledger.errors import TxRejected
from gateway.ledger.store import Store
from gateway.ledger.verify import verify_chain
from gateway.ln.channel import ledger_bodies
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.ledger_file import FileLedger
from gateway.ln.node.ledger_port import CHANNEL_KINDS, MemoryLedger
from hil_tests.gateway.ledger import supersede_kit as kit
from hil_tests.gateway.ledger.conftest import (
    ALICE,
    BOB,
    MALLORY,
    VALIDATOR,
    write_config,
)

P1, P2 = bytes([0x41] * 32), bytes([0x42] * 32)
H1, H2 = hashlib.sha256(P1).hexdigest(), hashlib.sha256(P2).hexdigest()
T0 = 1_764_000_001_000


def _rejects(ledger, tx, height, reason):
    before = copy.deepcopy(ledger)
    with pytest.raises(TxRejected) as err:
        rules.apply(ledger, tx, height)
    assert err.value.reason == reason, err.value
    assert ledger == before  # a refusal changes nothing


def _closing(dispute_blocks=5, number=3, holder=ALICE, at=2, htlcs=()):
    ledger, ch = kit.funded(dispute_blocks)
    published = kit.state(ch, number, holder, 5_000, list(htlcs))
    rules.apply(ledger, kit.force_close(published, holder), at)
    return ledger, ch


def test_supersede_of_a_channel_that_is_not_closing_is_refused():
    ledger, ch = kit.funded(dispute_blocks=5)
    later = kit.state(ch, 4, BOB, 2_000)
    _rejects(ledger, kit.supersede(later, BOB), 2, "channel_not_closing")  # still open

    ledger, ch = _closing(number=3, holder=ALICE)
    rules.apply(ledger, kit.penalty(ch, "b", kit.secret(ALICE, 3)), 3)
    _rejects(ledger, kit.supersede(kit.state(ch, 4, BOB, 0), BOB), 3, "channel_not_closing")

    ledger, ch = _closing(number=3, holder=ALICE, at=2)
    rules.apply(ledger, kit.settle(ch, "a"), 8)
    assert ledger.channels[ch].status == "closed"
    _rejects(ledger, kit.supersede(kit.state(ch, 4, BOB, 0), BOB), 8, "channel_not_closing")


def test_supersede_after_the_dispute_window_is_refused_and_on_its_last_block_accepted():
    ledger, ch = _closing(dispute_blocks=3, at=2)  # the window ends at block 5
    later = kit.state(ch, 4, BOB, 2_000)
    _rejects(ledger, kit.supersede(later, BOB), 6, "dispute_window_closed")
    rules.apply(ledger, kit.supersede(later, BOB), 5)
    assert ledger.channels[ch].state == later and ledger.channels[ch].close_height == 5


def test_supersede_needs_a_strictly_higher_number():
    ledger, ch = _closing(number=3, holder=ALICE)
    _rejects(ledger, kit.supersede(kit.state(ch, 3, BOB, 1_000), BOB), 3, "stale_state")
    _rejects(ledger, kit.supersede(kit.state(ch, 2, BOB, 1_000), BOB), 3, "stale_state")
    _rejects(ledger, kit.supersede(kit.state(ch, 3, ALICE, 1_000), ALICE), 3, "stale_state")
    rules.apply(ledger, kit.supersede(kit.state(ch, 4, ALICE, 1_000), ALICE), 3)  # own, later
    _rejects(ledger, kit.supersede(kit.state(ch, 4, BOB, 1_000), BOB), 4, "stale_state")
    rules.apply(ledger, kit.supersede(kit.state(ch, 9, BOB, 1_000), BOB), 4)
    assert ledger.channels[ch].state["number"] == 9


def test_supersede_checks_its_state_as_a_force_close_does():
    ledger, ch = _closing(number=3, holder=ALICE)
    later = kit.state(ch, 5, BOB, 2_000)
    _rejects(ledger, kit.supersede(later, BOB, signer=BOB), 3, "bad_state")  # self-signed
    lopsided = dict(later, balance_a_msat=2_001)
    _rejects(ledger, kit.supersede(lopsided, BOB), 3, "bad_state")
    stranger = dict(later, holder=MALLORY.pubkey)
    _rejects(ledger, kit.supersede(stranger, MALLORY, signer=ALICE), 3, "bad_state")
    _rejects(ledger, kit.supersede(dict(later, chain="00" * 32), BOB), 3, "bad_state")
    _rejects(ledger, kit.supersede(dict(later, number=-1), BOB), 3, "bad_state")
    bad_htlc = dict(later, balance_b_msat=later["balance_b_msat"] - 10)
    bad_htlc["htlcs"] = [txs.state_htlc("c", 0, 10, H1, 99)]
    _rejects(ledger, kit.supersede(bad_htlc, BOB), 3, "bad_state")
    elsewhere = dict(later, channel="ab" * 32)  # the body names our channel, the state another
    sig = txs.sign_state(elsewhere, ALICE)
    body = dict(ledger_bodies.supersede_body(kit.CHAIN, elsewhere, bytes.fromhex(sig)), channel=ch)
    _rejects(ledger, txs.Tx(body).signed_by(BOB), 3, "bad_state")
    _rejects(ledger, kit.supersede(dict(later, channel="ab" * 32), BOB), 3, "unknown_channel")
    _rejects(ledger, kit.supersede(later, BOB).signed_by(ALICE), 3, "unexpected_signer")
    unsigned = txs.Tx(kit.supersede(later, BOB).body).signed_by(ALICE)
    _rejects(ledger, unsigned, 3, "missing_signature")
    extra = txs.Tx(dict(kit.supersede(later, BOB).body, party="b")).signed_by(BOB)
    _rejects(ledger, extra, 3, "malformed")


def test_the_window_restarts_at_the_supersede():
    ledger, ch = _closing(dispute_blocks=3, at=2)  # would end at block 5
    later = kit.state(ch, 4, BOB, 2_000)
    rules.apply(ledger, kit.supersede(later, BOB), 4)  # now ends at block 7
    _rejects(ledger, kit.settle(ch, "b"), 6, "dispute_window_open")
    _rejects(ledger, kit.settle(ch, "b"), 7, "dispute_window_open")
    rules.apply(ledger, kit.settle(ch, "b"), 8)
    assert kit.paid(ledger) == {"a": 2_000, "b": 8_000}
    assert ledger.channels[ch].status == "closed"


def test_a_revoked_state_brought_by_a_supersede_loses_the_whole_channel():
    ledger, ch = _closing(dispute_blocks=3, number=3, holder=ALICE, at=2)
    revoked = kit.state(ch, 5, BOB, 1_000)  # Bob moved on to 6 and gave Alice this secret
    rules.apply(ledger, kit.supersede(revoked, BOB), 5)  # the window now ends at block 8
    _rejects(ledger, kit.penalty(ch, "b", kit.secret(BOB, 5)), 6, "not_channel_party")
    _rejects(ledger, kit.penalty(ch, "a", kit.secret(ALICE, 3)), 6, "not_channel_party")  # hers
    _rejects(ledger, kit.penalty(ch, "a", kit.secret(BOB, 5)), 9, "dispute_window_closed")
    rules.apply(ledger, kit.penalty(ch, "a", kit.secret(BOB, 5)), 8)  # after the first window
    assert ledger.channels[ch].status == "penalized"
    assert kit.paid(ledger) == {"a": kit.CAPACITY, "b": 0}
    assert ledger.conservation_error() is None


def test_a_revoked_state_superseded_by_the_victim_is_still_penalized():
    # the victim may bring its own later state first (to be safe whatever comes) and still take
    # the penalty: the revoked state was published in this close
    ledger, ch = _closing(number=1, holder=ALICE, at=2)
    rules.apply(ledger, kit.supersede(kit.state(ch, 6, BOB, 2_500), BOB), 3)
    rules.apply(ledger, kit.penalty(ch, "b", kit.secret(ALICE, 1)), 4)
    assert ledger.channels[ch].status == "penalized"
    assert kit.paid(ledger) == {"a": 0, "b": kit.CAPACITY}
    assert ledger.conservation_error() is None


def test_a_cheater_who_supersedes_its_revoked_state_at_once_still_loses_the_whole_channel():
    # Alice moved on to state 5 and gave Bob the secret of her state 3. She publishes 3 (it holds
    # her HTLC a0), then at once her unrevoked 5 (also Bob's b0, which she claims), so that her
    # supersede lands before Bob's penalty: the penalty still takes the capacity, outputs too
    a0, b0 = txs.state_htlc("a", 0, 1_000, H1, 50), txs.state_htlc("b", 0, 700, H2, 50)
    ledger, ch = _closing(dispute_blocks=3, number=3, holder=ALICE, at=2, htlcs=[a0])
    rules.apply(ledger, kit.supersede(kit.state(ch, 5, ALICE, 4_000, [a0, b0]), ALICE), 2)
    rules.apply(ledger, kit.claim(ch, "a", 1, P2, nonce="claim-5-1"), 3)
    assert ledger.channels[ch].state["number"] == 5
    rules.apply(ledger, kit.penalty(ch, "b", kit.secret(ALICE, 3)), 3)
    channel = ledger.channels[ch]
    assert channel.status == "penalized"
    assert [h["outcome"] for h in channel.htlcs] == ["penalized", "penalized"]
    assert kit.paid(ledger) == {"a": 0, "b": kit.CAPACITY}
    assert ledger.conservation_error() is None
    _rejects(ledger, kit.settle(ch, "a"), 9, "channel_not_closing")


def test_the_penalty_of_an_earlier_published_state_lasts_as_long_as_the_restarted_window():
    ledger, ch = _closing(dispute_blocks=3, number=3, holder=ALICE, at=2)  # ends at block 5
    rules.apply(ledger, kit.supersede(kit.state(ch, 5, ALICE, 4_000), ALICE), 5)  # now at 8
    _rejects(ledger, kit.penalty(ch, "b", kit.secret(ALICE, 3)), 9, "dispute_window_closed")
    rules.apply(ledger, kit.penalty(ch, "b", kit.secret(ALICE, 3)), 8)
    assert kit.paid(ledger) == {"a": 0, "b": kit.CAPACITY}


def test_no_party_penalizes_itself_with_a_state_it_published():
    ledger, ch = _closing(dispute_blocks=5, number=3, holder=ALICE, at=2)
    _rejects(ledger, kit.penalty(ch, "a", kit.secret(ALICE, 3)), 3, "not_channel_party")
    rules.apply(ledger, kit.supersede(kit.state(ch, 6, BOB, 2_000), BOB), 3)
    _rejects(ledger, kit.penalty(ch, "b", kit.secret(BOB, 6)), 4, "not_channel_party")
    _rejects(ledger, kit.penalty(ch, "a", kit.secret(ALICE, 3)), 4, "not_channel_party")
    rules.apply(ledger, kit.settle(ch, "a"), 9)
    assert kit.paid(ledger) == {"a": 2_000, "b": 8_000}


def test_the_secret_of_a_state_never_published_is_refused():
    ledger, ch = _closing(dispute_blocks=5, number=3, holder=ALICE, at=2)
    rules.apply(ledger, kit.supersede(kit.state(ch, 5, ALICE, 4_000), ALICE), 3)
    never = [kit.secret(ALICE, 4), kit.secret(ALICE, 2), kit.secret(BOB, 3), kit.secret(BOB, 5)]
    for revealed in [*never, bytes(32)]:
        _rejects(ledger, kit.penalty(ch, "b", revealed), 4, "bad_secret")
    _rejects(ledger, kit.penalty(ch, "a", kit.secret(BOB, 5)), 4, "bad_secret")
    assert ledger.channels[ch].published == [
        {"holder": ALICE.pubkey, "number": n, "revocation_hash": _rev(ALICE, n)} for n in (3, 5)
    ]


def _rev(holder, number):
    return hashlib.sha256(kit.secret(holder, number)).hexdigest()


def test_supersede_then_settle_pays_exactly_the_capacity():
    ledger, ch = _closing(dispute_blocks=3, number=2, holder=ALICE, at=2)
    outs = [txs.state_htlc("a", 0, 1_500, H1, 8), txs.state_htlc("b", 0, 800, H2, 100)]
    later = kit.state(ch, 4, BOB, 2_000, outs)  # b keeps 5,700
    rules.apply(ledger, kit.supersede(later, BOB), 3)
    assert [h["outcome"] for h in ledger.channels[ch].htlcs] == ["pending", "pending"]
    rules.apply(ledger, kit.settle(ch, "a"), 9)  # a's offer expired at 8: back to a
    assert kit.paid(ledger) == {"a": 2_000 + 1_500, "b": 5_700}
    assert ledger.channels[ch].status == "settled"
    rules.apply(ledger, kit.claim(ch, "a", 1, P2), 10)
    assert kit.paid(ledger) == {"a": 2_000 + 1_500 + 800, "b": 5_700}
    assert sum(kit.paid(ledger).values()) == kit.CAPACITY
    assert ledger.channels[ch].status == "closed"
    assert ledger.conservation_error() is None


def test_claims_of_identical_outputs_carry_over_and_the_others_are_dropped():
    old = [
        txs.state_htlc("a", 0, 1_000, H1, 50),  # kept unchanged by the later state
        txs.state_htlc("a", 1, 500, H1, 50),  # kept with another expiry: not the same output
        txs.state_htlc("b", 0, 700, H2, 50),  # settled off the ledger in the later state
    ]
    ledger, ch = _closing(dispute_blocks=5, number=3, holder=ALICE, at=2, htlcs=old)
    rules.apply(ledger, kit.claim(ch, "b", 0, P1), 3)
    rules.apply(ledger, kit.claim(ch, "b", 1, P1), 3)
    rules.apply(ledger, kit.claim(ch, "a", 2, P2), 3)
    new = [
        txs.state_htlc("a", 0, 1_000, H1, 50),
        txs.state_htlc("a", 1, 500, H1, 60),
        txs.state_htlc("b", 1, 300, H2, 50),
    ]
    later = kit.state(ch, 5, BOB, 3_000, new)  # b keeps 5,200
    rules.apply(ledger, kit.supersede(later, BOB), 4)
    outs = ledger.channels[ch].htlcs
    assert [(h["offerer"], h["id"], h["outcome"]) for h in outs] == [
        ("a", 0, "fulfilled"),
        ("a", 1, "pending"),
        ("b", 1, "pending"),
    ]
    assert [h["preimage"] for h in outs] == [P1.hex(), "", ""]
    assert [{k: h[k] for k in txs.HTLC_FIELDS} for h in outs] == new
    # a claim is a body: the same one again (same index and preimage) is a replay, so a claim
    # of a superseding state's output names that state in its nonce
    _rejects(ledger, kit.claim(ch, "b", 1, P1), 5, "replay")
    rules.apply(ledger, kit.settle(ch, "b"), 10)
    assert kit.paid(ledger) == {"a": 3_000, "b": 5_200 + 1_000}
    rules.apply(ledger, kit.claim(ch, "a", 2, P2, nonce="claim-5-2"), 11)
    rules.apply(ledger, kit.claim(ch, "b", 1, P1, nonce="claim-5-1"), 12)
    assert kit.paid(ledger) == {"a": 3_300, "b": 6_700}
    assert ledger.channels[ch].status == "closed"
    assert ledger.conservation_error() is None


def test_a_superseded_claim_of_an_output_that_stays_is_paid_once():
    out = txs.state_htlc("b", 3, 900, H2, 40)
    ledger, ch = _closing(dispute_blocks=2, number=3, holder=ALICE, at=2, htlcs=[out])
    rules.apply(ledger, kit.claim(ch, "a", 0, P2), 3)
    rules.apply(ledger, kit.supersede(kit.state(ch, 4, BOB, 2_000, [out]), BOB), 3)
    rules.apply(ledger, kit.supersede(kit.state(ch, 7, ALICE, 1_000, [out]), ALICE), 4)
    assert ledger.channels[ch].htlcs[0]["outcome"] == "fulfilled"
    _rejects(ledger, kit.claim(ch, "a", 0, P2, nonce="claim-7-0"), 5, "htlc_resolved")
    rules.apply(ledger, kit.settle(ch, "a"), 7)
    assert kit.paid(ledger) == {"a": 1_000 + 900, "b": 8_100}
    assert ledger.channels[ch].status == "closed"


def _sigs(body, *signers):
    return {k.pubkey: k.sign_digest(digest(body)) for k in signers}


def _fund_through_port(port):
    """Alice's 6,000 and Bob's 4,000 deposited and funded into a channel (a dispute window of 4
    blocks) through a node's ledger port: the channel's id."""
    a, b = bytes.fromhex(ALICE.pubkey), bytes.fromhex(BOB.pubkey)
    port.deposit(a, 6_000)
    port.deposit(b, 4_000)
    fund = ledger_bodies.funding_body(port.chain, a, b, (6_000, 4_000), "f", dispute_blocks=4)
    port.submit(fund, _sigs(fund, ALICE, BOB))
    return digest(fund).hex()


def _alice_force_closes_through_port(port, state):
    """Alice publishes her `state`, signed by Bob, through the port: Bob's signature."""
    sig = bytes.fromhex(txs.sign_state(state, BOB))
    force = ledger_bodies.force_close_body(port.chain, state, sig)
    port.submit(force, _sigs(force, ALICE))
    return sig


def test_a_node_supersedes_through_its_ledger_port_with_supersede_body():
    assert "channel_supersede" in CHANNEL_KINDS
    mem = MemoryLedger()
    a, b = bytes.fromhex(ALICE.pubkey), bytes.fromhex(BOB.pubkey)
    ch = _fund_through_port(mem)
    mine = txs.commitment_state(mem.chain, ch, 3, 5_000, 5_000, ALICE.pubkey, "11" * 32)
    sig = _alice_force_closes_through_port(mem, mine)
    theirs = txs.commitment_state(mem.chain, ch, 4, 2_000, 8_000, BOB.pubkey, "22" * 32)
    body = ledger_bodies.supersede_body(
        mem.chain, theirs, bytes.fromhex(txs.sign_state(theirs, ALICE))
    )
    assert body["nonce"] == "supersede-4" and body["channel"] == ch
    mem.submit(body, _sigs(body, BOB))
    view = mem.channel(bytes.fromhex(ch))
    assert view.status == "closing" and view.state == theirs and view.close_height == mem.tip
    assert view.published == [
        {"holder": ALICE.pubkey, "number": 3, "revocation_hash": "11" * 32},
        {"holder": BOB.pubkey, "number": 4, "revocation_hash": "22" * 32},
    ]
    mem.submit(body, _sigs(body, BOB))  # a re-submission (every watch tick) is idempotent
    assert mem.channel(bytes.fromhex(ch)).close_height == view.close_height
    stale = ledger_bodies.supersede_body(mem.chain, mine, sig)
    with pytest.raises(LedgerPortError) as err:
        mem.submit(stale, _sigs(stale, ALICE))
    assert err.value.reason == "stale_state"
    mem.mine(4)
    done = ledger_bodies.settle_body(mem.chain, bytes.fromhex(ch), "a")
    mem.submit(done, _sigs(done, ALICE))
    assert (mem.balance(a), mem.balance(b), mem.money()) == (2_000, 8_000, 10_000)


def test_the_openapi_description_lists_every_kind():
    spec = json.loads(Path(txs.__file__).with_name("openapi.json").read_text())
    kind = spec["components"]["schemas"]["Tx"]["properties"]["body"]["properties"]["kind"]
    assert sorted(kind["enum"]) == sorted(txs.KINDS)


def test_the_ledger_node_takes_a_supersede_and_shows_the_later_state(ledger):
    # a window open for the whole test however loaded the machine
    setup, fund = kit.funded_txs(ledger.chain, dispute_blocks=1000)
    for tx in [*setup, fund]:
        ledger.submit(tx)
    mine = txs.commitment_state(ledger.chain, fund.id, 3, 5_000, 5_000, ALICE.pubkey, "11" * 32)
    mine_sig = bytes.fromhex(txs.sign_state(mine, BOB))
    ledger.submit(
        txs.Tx(ledger_bodies.force_close_body(ledger.chain, mine, mine_sig)).signed_by(ALICE)
    )
    theirs = txs.commitment_state(ledger.chain, fund.id, 4, 2_000, 8_000, BOB.pubkey, "22" * 32)
    theirs_sig = bytes.fromhex(txs.sign_state(theirs, ALICE))
    later = txs.Tx(ledger_bodies.supersede_body(ledger.chain, theirs, theirs_sig)).signed_by(BOB)
    receipt = ledger.submit(later)
    view = ledger.client.channel(fund.id)
    assert view["status"] == "closing" and view["state"] == theirs
    assert view["close_height"] == receipt["height"]
    assert view["published"] == [
        {"holder": ALICE.pubkey, "number": 3, "revocation_hash": "11" * 32},
        {"holder": BOB.pubkey, "number": 4, "revocation_hash": "22" * 32},
    ]
    assert ledger.submit(later)["duplicate"]
    stale = txs.Tx(ledger_bodies.supersede_body(ledger.chain, mine, mine_sig)).signed_by(ALICE)
    with pytest.raises(TxRejected) as err:
        ledger.submit(stale)
    assert err.value.reason == "stale_state"
    assert ledger.client.channel(fund.id)["state"] == theirs
    ledger.running.stop()  # the stored chain, supersede included, re-validates from genesis
    verified = CliRunner().invoke(ledger_cli, ["verify", "--config", str(ledger.config_path)])
    assert verified.exit_code == 0 and "OK:" in verified.output, verified.output


def test_the_openapi_description_lists_every_rejection_the_rules_give():
    spec = json.loads(Path(txs.__file__).with_name("openapi.json").read_text())
    error = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    source = "".join(p.read_text() for p in Path(txs.__file__).parent.glob("*.py"))
    given = set(re.findall(r'TxRejected\(\s*"([a-z_]+)"', source))
    assert {"stale_state", "bad_state", "dispute_window_closed"} <= given
    assert given <= set(error["reason"]["enum"])


def _chain_txs(chain_id):
    """Funding, then Alice's revoked state 3 published and at once her latest 5, on `chain_id`."""
    setup, fund = kit.funded_txs(chain_id, dispute_blocks=5)
    revoked = kit.state(fund.id, 3, ALICE, 9_000, chain=chain_id)
    latest = kit.state(fund.id, 5, ALICE, 5_000, chain=chain_id)
    penalty = kit.penalty(fund.id, "b", kit.secret(ALICE, 3), chain=chain_id)
    return (
        fund.id,
        [
            [*setup, fund],
            [kit.force_close(revoked, ALICE, chain=chain_id)],
            [kit.supersede(latest, ALICE, chain=chain_id)],
        ],
        penalty,
    )


def test_the_published_states_are_rebuilt_from_the_blocks_and_verify_accepts_the_penalty(tmp_path):
    cfg = ledger_config.load(write_config(tmp_path / "node"))
    db = tmp_path / "node" / "published.sqlite"
    chain = Chain(Store(db), VALIDATOR, cfg.genesis())
    ch, blocks_txs, penalty = _chain_txs(chain.chain_id)
    for i, candidates in enumerate(blocks_txs):
        _, results = chain.build(candidates, T0 + i)
        assert all(isinstance(r, Receipt) for r in results.values()), results
    record = [
        {"holder": ALICE.pubkey, "number": n, "revocation_hash": _rev(ALICE, n)} for n in (3, 5)
    ]
    assert chain.state.channels[ch].published == record
    assert chain.view.channels[ch] == chain.state.channels[ch]
    chain.store.close()
    restarted = Chain(Store(db), VALIDATOR, cfg.genesis())  # the state is replayed from blocks
    assert restarted.state.channels[ch] == chain.state.channels[ch]
    assert restarted.view.channels[ch].published == record
    _, results = restarted.build([penalty], T0 + 10)
    assert isinstance(results[penalty.id], Receipt), results
    assert restarted.view.channels[ch].status == "penalized"
    assert restarted.view.balances[BOB.pubkey] == 10_000 - 4_000 + 10_000
    stored = list(restarted.store.blocks(0))
    report = verify_chain(stored, cfg.name, cfg.operator, VALIDATOR.pubkey, cfg.genesis_time_ms)
    assert report.height == restarted.tip.height and report.transactions == 8
    restarted.store.close()


def test_a_file_ledger_written_before_the_record_still_penalizes_its_published_state(tmp_path):
    led = FileLedger(tmp_path / "ledger.sqlite")
    a, b = bytes.fromhex(ALICE.pubkey), bytes.fromhex(BOB.pubkey)
    ch = _fund_through_port(led)
    revoked = txs.commitment_state(led.chain, ch, 3, 9_000, 1_000, ALICE.pubkey, _rev(ALICE, 3))
    _alice_force_closes_through_port(led, revoked)
    (doc,) = led.db.execute("SELECT doc FROM ledger WHERE id = 1").fetchone()
    old = json.loads(doc)
    for channel in old["channels"].values():
        del channel["published"]  # as a file of the previous version holds it
    led.db.execute("UPDATE ledger SET doc = ? WHERE id = 1", (json.dumps(old),))
    assert led.channel(bytes.fromhex(ch)).published == [
        {"holder": ALICE.pubkey, "number": 3, "revocation_hash": _rev(ALICE, 3)}
    ]
    body = ledger_bodies.penalty_body(led.chain, bytes.fromhex(ch), "b", kit.secret(ALICE, 3))
    led.submit(body, _sigs(body, BOB))
    assert (led.balance(a), led.balance(b)) == (0, 10_000)
