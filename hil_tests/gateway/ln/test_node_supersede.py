"""Channel node processes on the real ledger when the peer publishes an older state than the
newest one it signed (DESIGN: `channel_supersede`): the watch supersedes it with our latest and
claims its HTLC output, a revoked one still gets the penalty, and a forwarder does not fail an
HTLC upstream while a newer state it signed may still bring it onto the ledger.

The peer's ack or revoke is kept from arriving by a relay between the nodes (hil_tests/rig/tcp_proxy.py), and
the older state is published from the peer's own database while its process is down, as a
cheater (or a node that lost its last seconds) would."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.ln.channel.commitment import sign
from gateway.ln.channel.ledger_bodies import digest, supersede_body
from gateway.ln.errors import LnError
from gateway.ln.node.keys import load_or_create
from gateway.ln.node.store import Store
from gateway.ln.node.switch import Switch
from hil_tests.gateway.ln.node_procs import NodeProc, wait_until
from hil_tests.gateway.ln.real_ledger import DEPOSIT, RealLedger
from hil_tests.gateway.ln.stale_state import publish_stored_state
from hil_tests.rig.tcp_proxy import Relay

M = 1_000_000


def _backup(node: NodeProc) -> Path:
    """A consistent copy of the node's channel database, beside it (its keys are there)."""
    backup = node.data_dir / "backup.sqlite"
    with sqlite3.connect(node.data_dir / "channels.sqlite") as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    return backup


def _supersede_with_stored_state(db: Path, channel_id: str, chain: str, submit: Any) -> int:
    """What the peer's node would do with the newest state `db` holds: channel_supersede."""
    keys = load_or_create(db.parent)
    store, switch = Store(db, keys), Switch(keys.node_id)
    try:
        store.load(switch)
    finally:
        store.close()
    ch = switch.channels[bytes.fromhex(channel_id)]
    body = supersede_body(chain, ch.ledger_state(ch.latest, ch.me), ch.remote_ledger_sig)
    submit(body, {keys.node_id.hex(): sign(keys.node_priv, digest(body)).hex()})
    return int(body["state"]["number"])


def _pay_in_background(payer: NodeProc, invoice: str) -> None:
    def run() -> None:
        try:
            payer.api("/pay", {"invoice": invoice}, timeout=120)
        except LnError:
            pass  # the payer is killed, or the payment fails: the test reads the outcome

    threading.Thread(target=run, daemon=True).start()


def _quiet(x: NodeProc, y: NodeProc) -> bool:
    cx, cy = x.channel_with(y), y.channel_with(x)
    return not (cx["htlcs"] or cy["htlcs"] or cx["unsettled_updates"] or cy["unsettled_updates"])


def _relayed(tmp_path: Path) -> tuple[RealLedger, NodeProc, NodeProc, Relay, Any]:
    """Alice and bob on a real ledger (blocks 300 ms apart while a channel closes), a relay in
    front of bob's port, and a submit(body, sigs) of the ledger's."""
    led = RealLedger(tmp_path / "ledger", idle_block_ms=300)
    a = led.node(tmp_path, "alice")
    b = led.node(tmp_path, "bob")
    submit = lambda body, sigs: led.client.submit({"body": body, "sigs": sigs})  # noqa: E731
    return led, a, b, Relay(b.port), submit


def _open_through(a: NodeProc, b: NodeProc, link: Relay) -> str:
    """Alice dials bob through the relay and opens a 50 M channel: its id."""
    a.api("/connect", {"port": link.port, "node_id": b.node_id})
    return a.api("/open", {"node_id": b.node_id, "amount_msat": 50 * M})["channel_id"]


def _unacked_htlc(a: NodeProc, b: NodeProc, link: Relay) -> int:
    """Alice pays bob 10 M while bob's answers wait in the relay: bob signs her batch (his
    commitment n holds the HTLC, returned) but alice never gets his ack."""
    link.hold("back")
    _pay_in_background(a, b.invoice(10 * M)[0])
    wait_until(lambda: b.channel_with(a)["htlcs"] == 1, 60, "bob signed alice's HTLC")
    return int(b.channel_with(a)["commitment"])


def _kill_all(*nodes: NodeProc) -> None:
    for n in nodes:
        n.kill()


@pytest.mark.parametrize("revoked", [False, True], ids=["unrevoked", "revoked"])
def test_the_peer_publishes_an_older_state_than_ours(tmp_path, revoked):
    # alice pays bob; bob signs her batch (he holds commitment n with her 10 M HTLC) but his ack
    # waits in the relay, so alice never revokes n - 1. Alice's process dies and n - 1 is
    # published from her database: bob supersedes it with n and claims the HTLC output with
    # his invoice's preimage. With an older backup of alice's (revoked), bob takes it all.
    led, a, b, link, submit = _relayed(tmp_path)
    try:
        cid = _open_through(a, b, link)
        assert a.api("/pay", {"invoice": b.invoice(M)[0]})["status"] == "succeeded"
        wait_until(lambda: _quiet(a, b), 60, "the first payment signed by both")
        backup = _backup(a)  # revoked once alice pays again
        assert a.api("/pay", {"invoice": b.invoice(2 * M)[0]})["status"] == "succeeded"
        wait_until(lambda: _quiet(a, b), 60, "the second payment signed by both")
        n = _unacked_htlc(a, b, link)
        a.kill()
        db = backup if revoked else a.data_dir / "channels.sqlite"
        published = publish_stored_state(db, cid, led.chain, submit)
        assert published < n - 1 if revoked else published == n - 1
        if revoked:
            wait_until(lambda: led.client.channel(cid)["status"] == "penalized", 60, "penalty")
            assert led.client.balance(b.node_id) == DEPOSIT + 50 * M  # the whole channel
            assert led.client.balance(a.node_id) == DEPOSIT - 50 * M
            wait_until(lambda: b.channel_with(a)["state"] == "CLOSED", 60, "bob sees it closed")
            return
        wait_until(lambda: led.client.channel(cid)["state"]["number"] == n, 60, "bob supersedes")
        view = led.client.channel(cid)
        assert view["state"]["holder"] == b.node_id
        (out,) = view["htlcs"]
        assert out["offerer"] == "a" and out["amount_msat"] == 10 * M
        wait_until(lambda: led.client.channel(cid)["status"] == "closed", 60, "claimed, settled")
        view = led.client.channel(cid)
        (out,) = view["htlcs"]
        assert out["outcome"] == "fulfilled"
        state = view["state"]
        assert state["balance_a_msat"] + state["balance_b_msat"] + out["amount_msat"] == 50 * M
        assert led.client.balance(a.node_id) == DEPOSIT - 50 * M + state["balance_a_msat"]
        assert led.client.balance(b.node_id) == DEPOSIT + state["balance_b_msat"] + 10 * M
        assert state["balance_b_msat"] == 3 * M  # the two payments signed before
        wait_until(lambda: b.channel_with(a)["state"] == "CLOSED", 60, "bob sees it closed")
    finally:
        link.close()
        _kill_all(a, b)
        led.stop()


def test_a_restarted_node_supersedes_once_the_peer_reestablished_the_closing_channel(tmp_path):
    # As the unrevoked case, but bob's process is down too when alice's older state n - 1 is
    # published. Bob starts again: his watch sees the close, but supersedes only once a
    # reestablish since his start shows his state fresh (it may come from an old backup), and
    # marks the channel FORCE_CLOSING. Then alice comes back and reestablishes; a node ignored
    # the reestablish of a channel that was not live, so bob never superseded and the older
    # state settled without alice's 10 M HTLC to him. And alice may see her own close on the
    # ledger before she dials bob (here her dials fail until then): a node redialled only for
    # live channels, so neither dialled again (a grid-wide power cut restarts both at once).
    led, a, b, link, submit = _relayed(tmp_path)
    try:
        cid = _open_through(a, b, link)
        assert a.api("/pay", {"invoice": b.invoice(M)[0]})["status"] == "succeeded"
        wait_until(lambda: _quiet(a, b), 60, "the payment signed by both")
        n = _unacked_htlc(a, b, link)
        a.kill()
        b.kill()
        assert publish_stored_state(a.data_dir / "channels.sqlite", cid, led.chain, submit) == n - 1
        b.start()  # on the same port: alice's relay still leads to him
        wait_until(lambda: b.channel_with(a)["state"] == "FORCE_CLOSING", 60, "bob sees the close")
        assert "not superseding it before the peer reestablished" in b.log_tail()
        link.release("back")
        link.cut()  # alice's dials fail until her watch has seen the close
        a.start()
        wait_until(lambda: a.channel_with(b)["state"] == "FORCE_CLOSING", 60, "alice: the close")
        link.heal()  # she dials bob through the relay again: the channel waits for a reestablish
        wait_until(lambda: led.client.channel(cid)["state"]["number"] == n, 60, "bob supersedes")
        wait_until(lambda: led.client.channel(cid)["status"] == "closed", 60, "claimed, settled")
        (out,) = led.client.channel(cid)["htlcs"]
        assert out["offerer"] == "a" and out["outcome"] == "fulfilled"
        assert led.client.balance(b.node_id) == DEPOSIT + M + 10 * M
        assert led.client.balance(a.node_id) == DEPOSIT - M - 10 * M
    finally:
        link.close()
        _kill_all(a, b)
        led.stop()


@pytest.mark.parametrize("superseded", [True, False], ids=["superseded", "window-closes"])
def test_a_forwarder_waits_while_a_newer_state_may_bring_its_htlc_back(tmp_path, superseded):
    # alice -> bob -> carol. Bob proposes carol's HTLC (he signed her commitment n with it), her
    # ack waits in the relay; carol's process dies and her older commitment n - 1, without the
    # HTLC, is published. Bob must not fail alice's HTLC yet: carol may still supersede with n
    # and claim the output. If she does, bob learns the preimage on the ledger and alice's
    # payment succeeds; if the window closes without it, bob fails it upstream then.
    led = RealLedger(tmp_path / "ledger", idle_block_ms=300)
    a = led.node(tmp_path, "alice")
    b = led.node(tmp_path, "bob", "--cltv-delta", "100")
    c = led.node(tmp_path, "carol")
    link = Relay(c.port)
    submit = lambda body, sigs: led.client.submit({"body": body, "sigs": sigs})  # noqa: E731
    try:
        a.connect(b)
        b.api("/connect", {"port": link.port, "node_id": c.node_id})
        a.api("/open", {"node_id": b.node_id, "amount_msat": 50 * M})
        bc = b.api("/open", {"node_id": c.node_id, "amount_msat": 50 * M})["channel_id"]
        a.pay_once_routed(c, M)  # routes known
        wait_until(lambda: _quiet(a, b) and _quiet(b, c), 60, "the first payment signed")
        backup = _backup(c)  # carol's commitment n - 1, without the next HTLC
        before = a.channel_with(b)["remote_msat"]
        link.hold("back")  # carol's answers to bob wait in the relay
        invoice = c.invoice(10 * M)[0]
        _pay_in_background(a, invoice)
        wait_until(lambda: c.channel_with(b)["htlcs"] == 1, 60, "carol signed bob's HTLC")
        c.kill()
        n = publish_stored_state(backup, bc, led.chain, submit) + 1
        wait_until(lambda: b.channel_with(c)["state"] == "FORCE_CLOSING", 60, "bob sees it")
        start = led.client.channel(bc)["close_height"]
        wait_until(lambda: led.client.info()["height"] >= start + 3, 60, "three blocks")
        assert a.channel_with(b)["htlcs"] == 1  # not failed upstream: n may still come
        assert b.channel_with(a)["htlcs"] == 1
        if superseded:
            assert _supersede_with_stored_state(c.data_dir / "channels.sqlite", bc, led.chain,
                                                submit) == n  # fmt: skip
            c.start()  # carol's node claims the output with her invoice's preimage
            wait_until(lambda: a.channel_with(b)["htlcs"] == 0, 60, "bob fulfils upstream")
        else:
            wait_until(lambda: led.client.channel(bc)["status"] == "closed", 60, "settled")
            wait_until(lambda: a.channel_with(b)["htlcs"] == 0, 60, "bob fails upstream")
        wait_until(lambda: led.client.channel(bc)["status"] == "closed", 60, "settled")
        view = led.client.channel(bc)
        state = view["state"]
        assert state["number"] == (n if superseded else n - 1)
        claimed = sum(o["amount_msat"] for o in view["htlcs"] if o["outcome"] == "fulfilled")
        assert claimed == (10 * M if superseded else 0)
        assert state["balance_a_msat"] + state["balance_b_msat"] + claimed == 50 * M
        assert led.client.balance(b.node_id) == DEPOSIT - 50 * M + state["balance_a_msat"]
        assert led.client.balance(c.node_id) == DEPOSIT + state["balance_b_msat"] + claimed
        # alice's HTLC settled with bob: paid (carol has it, bob his fee) or failed (nobody)
        paid = a.channel_with(b)["remote_msat"] - before
        assert paid > 10 * M if superseded else paid == 0
    finally:
        link.close()
        _kill_all(a, b, c)
        led.stop()
