"""Where every node's money is at the end of a run, from the ledger and the channels (pure).

A node's money (`holdings`) is its ledger balance plus its side of every channel the ledger
still holds: an open channel's side as both ends list it (the smaller of the node's own
listing and its peer's listing of the peer's remote side; one of them when the other node did
not answer), a closing channel's side of the published state. What belongs to nobody yet
(HTLCs in flight, a payment one end lists as done and the other not yet, a closing or settled
channel's pending HTLC outputs, an open channel neither end listed) is `unassigned`. Every msat
starts as a deposit, so

    sum(holdings) + unassigned == sum(deposits),  unassigned >= 0 in every channel

(a negative remainder is money a listing or the ledger created: invariants.money_accounted;
so is an open channel's listing whose local + remote + in flight is not the capacity, checked
on its own since a side is the smaller of two views, and two ends disagreeing by more than all
the money in flight or paid in the run)

and each node's `money_delta_msat` (holdings - deposit) splits into what it was paid for the
receipts it sold (`earned_msat`: its paid invoices), what it paid (`spent_msat`: its succeeded
payments, fees included) and what it earned forwarding others' payments
(`fees_earned_msat`, the grid charge: the rest, within the HTLCs still in flight in its
channels, `in_flight_msat`). The amount a node holds in its open channels
alone is no measure of money: a channel force-closed and reopened, or opened late, moves the
node's funding between its ledger balance and its channels (the "400,000 sat earned" of the
homes whose channel had been reopened after the day began).
"""

from __future__ import annotations

from typing import Any


def channel_sides(
    ledger_channel: dict[str, Any], ends: dict[str, dict[str, Any]], by_id: dict[str, str]
) -> tuple[dict[str, int], int, dict[str, int], list[str]]:
    """(node name -> its side of the channel, unassigned msat, node name -> msat its side may be
    short by, problems) for one ledger channel; `ends`: the node name -> its listing
    ({"local_msat", "remote_msat", "in_flight_msat"}) of the same channel.

    An open channel's side is what both listings give the node, the smaller of its own
    `local_msat` and its peer's `remote_msat`: the rig reads the two ends one after the other
    while payments go on, so one end may list a payment done that the other does not list yet:
    summing each end's own `local_msat` then counts that payment on both sides, and `unassigned`
    went negative by its amount. The difference is money moving between them, unassigned and
    never counted twice. Taking the smaller view hides one end's inflated listing whenever the
    other end answers, so each listing is checked on its own: local + remote + in flight must be
    the capacity (a `problems` entry names the node and channel where it is not). With every
    listing adding up, the smaller views never sum to more than the capacity (no money created)
    and the disagreement is a transfer between the two ends; node_money bounds it."""
    status = ledger_channel.get("status")
    a, b = by_id.get(ledger_channel["a"], ""), by_id.get(ledger_channel["b"], "")
    capacity = int(ledger_channel.get("capacity_msat", 0))
    pending = sum(int(h["amount_msat"]) for h in ledger_channel.get("htlcs") or []
                  if h.get("outcome") == "pending")  # fmt: skip
    if status == "open":
        sides: dict[str, int] = {}
        short: dict[str, int] = {}
        problems = []
        for name, end in sorted(ends.items()):
            local, remote = int(end.get("local_msat", 0)), int(end.get("remote_msat", 0))
            flight = int(end.get("in_flight_msat", 0))
            if local + remote + flight != capacity:
                problems.append(f"{name} lists {local}+{remote}+{flight} != {capacity}")
        for me, peer in ((a, b), (b, a)):
            views = [int(v) for v in (ends.get(me, {}).get("local_msat"),
                                      ends.get(peer, {}).get("remote_msat")) if v is not None]  # fmt: skip
            if views:
                sides[me] = min(views)
                short[me] = max(views) - min(views)
        return sides, capacity - sum(sides.values()), short, problems
    if status == "closing":
        state = ledger_channel.get("state") or {}
        sides = {a: int(state.get("balance_a_msat", 0)), b: int(state.get("balance_b_msat", 0))}
        return sides, capacity - sum(sides.values()), {}, []
    if status == "settled":
        return {}, pending, {}, []  # the balances are paid out; the HTLC outputs wait for a claim
    return {}, 0, {}, []  # closed or penalized: paid out to ledger balances


def node_money(
    deposits: dict[str, int],
    balances: dict[str, int],
    ledger_channels: dict[str, dict[str, Any]],
    listed: dict[str, dict[str, dict[str, Any]]],
    by_id: dict[str, str],
    invoices: dict[str, list[dict[str, Any]]],
    payments: dict[str, list[dict[str, Any]]],
) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
    """Per node {holdings, money_delta, earned, spent, fees_earned, in_flight} (msat; an HTLC
    still in flight in one of its channels, a failed payment's whose removal both ends have not
    yet signed, is in nobody's holdings: `fees_earned` is exact within `in_flight`) and the summary
    {deposits, holdings, unassigned, difference}: `difference` is 0 when every msat deposited
    is in a node's holdings or unassigned. `listed`: channel id -> node name -> its listing."""
    holdings = {name: int(balances.get(name, 0)) for name in deposits}
    # HTLCs in its channels, either way, and payments one end lists and the other not yet
    in_flight = dict.fromkeys(deposits, 0)
    unassigned = between = 0
    negative: dict[str, int] = {}  # channel id -> its remainder, where below zero
    bad_listings: list[str] = []  # listings whose sides do not add up to the capacity
    # the most two listings of one channel can disagree by: what is in flight at its ends plus
    # every payment of the run not failed (amount + fee: all money that moved in any channel)
    moved = sum(int(p["amount"]) + int(p.get("fee", 0)) for ps in payments.values() for p in ps
                if p.get("status") != "failed")  # fmt: skip
    unexplained: dict[str, int] = {}  # channel id -> its disagreement, where beyond that
    for cid, ch in ledger_channels.items():
        sides, rest, short, problems = channel_sides(ch, listed.get(cid, {}), by_id)
        bad_listings += [f"channel {cid[:16]}: {p}" for p in problems]
        flight = sum(int(e.get("in_flight_msat", 0)) for e in listed.get(cid, {}).values())
        if max(short.values(), default=0) > flight + moved:
            unexplained[cid] = max(short.values())
        for name, msat in sides.items():
            if name in holdings:
                holdings[name] += msat
        for name, msat in short.items():
            if name in in_flight:
                in_flight[name] += msat
        between += max(short.values(), default=0)
        if rest < 0:
            negative[cid] = rest
        for name, end in listed.get(cid, {}).items():
            if name in in_flight and ch.get("status") == "open":
                in_flight[name] += int(end.get("in_flight_msat", 0))
        unassigned += rest
    out = {}
    for name, deposit in deposits.items():
        earned = sum(int(i["amount"]) for i in invoices.get(name, []) if i.get("paid"))
        spent = sum(int(p["amount"]) + int(p.get("fee", 0)) for p in payments.get(name, [])
                    if p.get("status") == "succeeded")  # fmt: skip
        delta = holdings[name] - deposit
        out[name] = {
            "holdings_msat": holdings[name],
            "money_delta_msat": delta,
            "earned_msat": earned,
            "spent_msat": spent,
            "fees_earned_msat": delta - earned + spent,
            "in_flight_msat": in_flight[name],
        }
    total_dep, total_held = sum(deposits.values()), sum(holdings.values())
    summary = {
        "deposits_msat": total_dep,
        "holdings_msat": total_held,
        "unassigned_msat": unassigned,
        "between_listings_msat": between,  # of unassigned: paid, listed by one end only (at most)
        "difference_msat": total_dep - total_held - unassigned,
        "balances_read": len(balances),
        "negative_channels": dict(sorted(negative.items())[:5]),
        "bad_listings": bad_listings[:5],
        "unexplained_between": dict(sorted(unexplained.items())[:5]),
    }
    return out, summary
