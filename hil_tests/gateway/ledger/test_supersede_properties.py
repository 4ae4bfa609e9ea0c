"""Property test of the closing rules with `channel_supersede`: random valid signed states of both
parties, then force closes, supersedes, penalties, claims, refunds and settles at rising heights.
A model of the window decides which force close / supersede / penalty / settle must pass: a
penalty takes the capacity with the secret of any state published in this close (force close or
supersede) by the other party, while the (restarted) window runs."""

import copy
import hashlib

from hypothesis import event, given, settings
from hypothesis import strategies as st

from gateway.ledger import rules, txs
from gateway.ledger.errors import TxRejected
from hil_tests.gateway.ledger import supersede_kit as kit
from hil_tests.gateway.ledger.conftest import ALICE, BOB

DISPUTE = 8
PREIMAGES = (bytes([0x51] * 32), bytes([0x52] * 32))
HASHES = [hashlib.sha256(p).hexdigest() for p in PREIMAGES] + ["ee" * 32]  # the last: unknown
# HTLC pool: a state holds each id absent, as variant 0 or as variant 1 (another expiry), so
# states share identical outputs, near-identical ones, and differ
POOL = [
    [txs.state_htlc("ab"[i % 2], i, 300 * (i + 1), HASHES[i % 3], cltv) for cltv in (30, 60)]
    for i in range(4)
]

STATES = st.lists(
    st.tuples(
        st.booleans(),  # holder: Alice or Bob
        st.integers(0, 9),  # number (two specs may share one)
        st.integers(0, 100),  # a's share of what the HTLCs leave, in percent
        st.lists(st.sampled_from([0, 1, 1, 1, 2]), min_size=len(POOL), max_size=len(POOL)),
    ),
    min_size=3,
    max_size=8,
)
OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("force", "supersede", "supersede", "penalty", "penalty"),
                *("claim", "claim", "refund", "settle"),
            ]
        ),
        st.integers(0, 15),  # which state / secret / output
        st.booleans(),  # party a or b
        st.integers(0, 2),  # blocks before this attempt
    ),
    min_size=6,
    max_size=30,
)


def _build(channel, spec):
    alice, number, share, picks = spec
    holder = ALICE if alice else BOB
    htlcs = [POOL[i][p - 1] for i, p in enumerate(picks) if p]
    rest = kit.CAPACITY - sum(h["amount_msat"] for h in htlcs)
    return kit.state(channel, number, holder, rest * share // 100, htlcs), holder


def _key(h):
    return tuple(h[f] for f in txs.HTLC_FIELDS)


@settings(max_examples=300, deadline=None)
@given(STATES, OPS)
def test_closing_conserves_money_and_the_highest_in_window_state_wins(specs, ops):
    ledger, ch = kit.funded(DISPUTE)
    states = [_build(ch, spec) for spec in specs]
    model = {"status": "open", "number": None, "close": None, "winner": None}
    published = []  # (holder, revocation hash) of every state published in this close
    numbers = []  # and their numbers
    best = None  # the highest number submitted while it could still count
    height = 1
    for op, index, alice, gap in ops:
        height += gap
        party = "a" if alice else "b"
        s, holder = states[index % len(states)]
        in_window = model["close"] is not None and height <= model["close"] + DISPUTE
        expect = None  # None: the model does not decide this one (claims, refunds)
        if op == "force":
            tx = kit.force_close(s, holder)
            expect = "ok" if model["status"] == "open" else "channel_not_open"
        elif op == "supersede":
            tx = kit.supersede(s, holder)
            if model["status"] != "closing":
                expect = "channel_not_closing"
            elif not in_window:
                expect = "dispute_window_closed"
            else:
                expect = "ok" if s["number"] > model["number"] else "stale_state"
        elif op == "penalty":
            tx = kit.penalty(ch, party, kit.secret(holder, s["number"]))
            revealed = hashlib.sha256(kit.secret(holder, s["number"])).hexdigest()
            claimant = ALICE if alice else BOB
            holders = {h for h, rev in published if rev == revealed}
            if model["status"] != "closing":
                expect = "channel_not_closing"
            elif not in_window:
                expect = "dispute_window_closed"
            elif holders - {claimant.pubkey}:
                expect = "ok"
                if (holder.pubkey, revealed) != published[-1]:
                    event("penalty of a superseded state")
            else:
                expect = "not_channel_party" if holders else "bad_secret"
        elif op == "settle":
            tx = kit.settle(ch, party)
            if model["status"] != "closing":
                expect = "channel_not_closing"
            else:
                expect = "dispute_window_open" if in_window else "ok"
        else:
            out, preimage = index % 5, PREIMAGES[index % 2]
            outs = ledger.channels[ch].htlcs
            if index < 12 and out < len(outs):  # mostly the party that may, with the preimage
                offerer = outs[out]["offerer"]
                party = offerer if op == "refund" else "ab"[offerer == "a"]
                preimage = PREIMAGES[HASHES.index(outs[out]["payment_hash"]) % 2]
            fields = {"preimage": preimage.hex()} if op == "claim" else {}
            nonce = f"{op}-{model['number']}-{out}"  # one per state, as a watch does
            body = dict(channel=ch, party=party, htlc=out, **fields)
            tx = txs.make(f"channel_htlc_{op}", kit.CHAIN, nonce=nonce, **body)
            tx = tx.signed_by(ALICE if party == "a" else BOB)
        if tx.id in ledger.tx_ids:
            expect = "replay"  # the same body again
        counts = (op == "force" and model["status"] == "open") or (
            op == "supersede" and model["status"] == "closing" and in_window
        )
        if counts:
            best = s["number"] if best is None else max(best, s["number"])
        before = copy.deepcopy(ledger)
        try:
            rules.apply(ledger, tx, height)
            outcome = "ok"
            event(f"{op} applied")
        except TxRejected as exc:
            outcome = exc.reason
            assert ledger == before  # a refusal changes nothing
        if expect is not None:
            assert outcome == expect, (op, s["number"], model, height)
        if outcome == "ok" and op in ("force", "supersede"):
            model.update(status="closing", number=s["number"], close=height)
            published.append((s["holder"], s["revocation_hash"]))
            assert ledger.channels[ch].published == [
                {"holder": h, "number": n, "revocation_hash": r}
                for (h, r), n in zip(published, [*numbers, s["number"]], strict=True)
            ]
            numbers.append(s["number"])
            if op == "supersede":  # claims stand for identical outputs only
                kept = {_key(h): h["preimage"] for h in before.channels[ch].htlcs}
                kept = {k: p for k, p in kept.items() if p}
                outs = ledger.channels[ch].htlcs
                assert [{f: h[f] for f in txs.HTLC_FIELDS} for h in outs] == s["htlcs"]
                carried = sum(1 for h in outs if _key(h) in kept)
                if kept:
                    event("claims carried over" if carried else "claims dropped")
                for h in outs:
                    assert h["preimage"] == kept.get(_key(h), "")
                    assert h["outcome"] == ("fulfilled" if h["preimage"] else "pending")
        elif outcome == "ok" and op == "penalty":
            model.update(status="penalized", winner=party)
            assert kit.paid(ledger) == {party: kit.CAPACITY, "ab"[party == "a"]: 0}
            assert all(h["outcome"] == "penalized" for h in ledger.channels[ch].htlcs)
        elif outcome == "ok" and op == "settle":
            model["status"] = "done"
        assert ledger.conservation_error() is None
        assert sum(ledger.balances.values()) + ledger.locked() == kit.SUPPLY

    channel = ledger.channels[ch]
    if model["status"] == "open":
        assert channel.status == "open" and kit.paid(ledger) == {"a": 0, "b": 0}
        return
    assert channel.state["number"] == best  # the latest state submitted in time won
    if model["status"] == "closing":
        assert kit.paid(ledger) == {"a": 0, "b": 0}  # nothing leaves while the window runs
        height = max(height, model["close"] + DISPUTE + 1)
        rules.apply(ledger, kit.settle(ch, "a"), height)
    paid = kit.paid(ledger)
    if channel.status == "penalized":
        winner = model["winner"]
        assert paid == {winner: kit.CAPACITY, "ab"[winner == "a"]: 0}
    else:  # settled or closed: the final state's balances and resolved outputs, to the msat
        expect = {"a": channel.state["balance_a_msat"], "b": channel.state["balance_b_msat"]}
        for h in channel.htlcs:
            if h["outcome"] == "fulfilled":
                expect["ab"[h["offerer"] == "a"]] += h["amount_msat"]
            elif h["outcome"] == "refunded":
                expect[h["offerer"]] += h["amount_msat"]
        assert paid == expect
        assert sum(paid.values()) == kit.CAPACITY - channel.pending_htlc_msat()
        assert (channel.status == "closed") == (channel.pending_htlc_msat() == 0)
        # and once every expiry has passed, the offerers take the rest: exactly the capacity
        height = max(height, *(h["cltv_expiry"] for h in channel.htlcs), 0) + 1
        for i, h in enumerate(channel.htlcs):
            if h["outcome"] == "pending":
                rules.apply(ledger, kit.refund(ch, h["offerer"], i), height)
        assert channel.status == "closed"
        assert sum(kit.paid(ledger).values()) == kit.CAPACITY
    assert ledger.conservation_error() is None
