"""The watch and a revoked state on the ledger (gateway/ln/node/watch.py; reviewer1 finding 1).

Publishing a revoked state costs a cheater nothing if the victim gives up its HTLCs before the
penalty lands: the cheater supersedes with its unrevoked latest (which holds our HTLC) just
before our penalty, claims the HTLC output, and settle pays it. So the watch unwinds a revoked
state as any other (our HTLCs a newer state holds wait, `may_come_back`), remembers the revoked
number the peer published (`extra["revoked_published"]`, committed before the penalty is sent)
and submits the penalty every tick, after a supersede too (the ledger may take the secret of any
state the peer published in the close), and the channel counts as penalized only once the
ledger says so. Real NodeCore, Switch, Watcher and store; the ledger's own rules (MemoryLedger).
"""

from __future__ import annotations

import hashlib

from gateway.ln.channel.channel import ChannelState
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.channel.ledger_bodies import force_close_body, htlc_claim_body, supersede_body
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.core import NodeCore
from gateway.ln.node.switch import Payment
from hil_tests.gateway.ln.channel_pair import run_round
from hil_tests.gateway.ln.watched_core import DEPOSIT, M, Watched, watched

P = b"p" * 32
H = hashlib.sha256(P).digest()


def _our_htlc_after_a_revoked_state(tmp_path) -> tuple[Watched, dict]:
    """We (alice, 50 M) paid 40 M to the peer (1 M) in commitment 1; the peer revoked its
    commitment 0 and publishes it: its ledger state 0, returned."""
    w = watched(tmp_path, (50 * M, 1 * M))
    w.core.reestablished.add(w.cid)
    revoked, _ = w.peer_state()
    revoked_body = force_close_body(w.ledger.chain, *w.peer_state())
    w.ours.queue_add(40 * M, H, 100)
    w.core.switch.payments[H] = Payment(H, 40 * M, 0)  # what Switch.pay records
    w.core.switch.dirty.add(("payments", H))
    run_round(w.ours, w.theirs)
    assert w.ours.remote_revoked_through == 0
    w.core.commit()
    w.peer_submit(revoked_body)
    return w, revoked


def _run_until_closed(w: Watched, watcher, ticks: int = 20) -> None:
    for _ in range(ticks):
        w.ledger.mine()
        watcher.tick()
        if w.ours.state == ChannelState.CLOSED:
            return
    raise AssertionError(f"channel still {w.ours.state.name}: {w.view()}")


def test_a_cheater_superseding_its_revoked_state_before_our_penalty_does_not_take_our_htlc(
    tmp_path,
):
    """Our first penalty does not commit (the ledger timed out) and the cheater's supersede
    lands; the cheater claims our HTLC: we learn its preimage, whichever way the close ends."""
    w, revoked = _our_htlc_after_a_revoked_state(tmp_path)
    watcher = w.watcher()
    penalties: list[bytes] = []  # the secret of each penalty we submitted
    real = w.ledger.submit

    def racing(body, sigs):
        if body["kind"] == "channel_penalty":
            penalties.append(bytes.fromhex(body["secret"]))
            if len(penalties) == 1:  # the peer's supersede with its latest lands, ours not
                w.peer_submit(supersede_body(w.ledger.chain, *w.peer_state()))
                raise LedgerPortError("unavailable", "timed out")
        return real(body, sigs)

    w.ledger.submit = racing  # type: ignore[method-assign]
    watcher.tick()
    view = w.view()
    assert view.status == "closing" and view.state["number"] == 1  # the penalty did not land
    pay = w.core.switch.payments[H]
    assert pay.status == "pending", f"failed upstream before the penalty landed: {pay.reason}"
    assert w.ours.extra.get("outputs_reported", []) == []
    w.peer_submit(htlc_claim_body(w.ledger.chain, w.cid, "b", 0, P, number=1))  # the peer paid
    _run_until_closed(w, watcher)
    view = w.view()
    assert pay.status == "succeeded" and pay.preimage == P, (pay.status, pay.reason)
    # the penalty was submitted again after the supersede, with the revoked state's secret
    assert len(penalties) >= 2
    assert {hashlib.sha256(s).hexdigest() for s in penalties} == {revoked["revocation_hash"]}
    assert w.ledger.money() == 2 * DEPOSIT
    if view.status == "penalized":  # a ledger that takes the secret of any published state
        assert w.ledger.balance(w.core.node_id) == DEPOSIT + 1 * M  # the whole 51 M
    else:  # the peer's state 1 stands: it took the 40 M it was paid, we keep our 10 M
        assert view.htlcs[0]["outcome"] == "fulfilled"
        assert w.ledger.balance(w.core.node_id) == DEPOSIT - 40 * M
    w.core.store.close()


def test_a_penalty_the_ledger_could_not_take_is_submitted_every_tick_even_after_a_restart(
    tmp_path,
):
    w, revoked = _our_htlc_after_a_revoked_state(tmp_path)
    watcher = w.watcher()
    down = True
    real = w.ledger.submit

    def flaky(body, sigs):
        if down and body["kind"] == "channel_penalty":
            raise LedgerPortError("unavailable", "ledger down")
        return real(body, sigs)

    w.ledger.submit = flaky  # type: ignore[method-assign]
    for _ in range(2):
        watcher.tick()
        w.ledger.mine()
    pay = w.core.switch.payments[H]
    assert pay.status == "pending", f"failed before the penalty committed: {pay.reason}"
    assert w.view().status == "closing"
    assert w.ours.state == ChannelState.FORCE_CLOSING
    assert w.ours.extra["revoked_published"] == [0]
    w.core.store.close()
    core = NodeCore(tmp_path, w.ledger, FeePolicy())  # the node restarts, the ledger is back
    down = False
    w = Watched(core, w.ledger, core.switch.channels[w.cid], w.theirs, w.cid, w.peer)
    w.watcher().tick()
    view = w.view()
    assert view.status == "penalized"
    assert w.ledger.balance(core.node_id) == DEPOSIT + 1 * M  # the whole capacity
    assert w.ledger.money() == 2 * DEPOSIT
    assert w.ours.state == ChannelState.CLOSED
    pay = core.switch.payments[H]
    assert pay.status == "failed"  # nobody was paid it: the 40 M came back with the channel
    core.store.close()


def test_a_revoked_state_already_superseded_when_we_first_look_is_still_penalized(tmp_path):
    """The cheater's revoked state and its supersede both land before our first tick (we were
    busy or offline for a block): the ledger lists the revoked one among the close's published
    states, and our penalty with its secret takes the whole channel."""
    w, revoked = _our_htlc_after_a_revoked_state(tmp_path)
    w.ledger.mine()
    w.peer_submit(supersede_body(w.ledger.chain, *w.peer_state()))
    w.ledger.mine()
    view = w.view()
    assert view.state["number"] == 1 and [p["number"] for p in view.published] == [0, 1]
    watcher = w.watcher()
    _run_until_closed(w, watcher)
    assert w.view().status == "penalized"
    assert w.ledger.balance(w.core.node_id) == DEPOSIT - 50 * M + 51 * M  # the whole channel
