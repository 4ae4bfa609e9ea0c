"""Where every node's money is at the end of a run, from the ledger and the channels (pure).

A node's money (`holdings`) is its ledger balance plus its side of every channel the ledger
still holds: an open channel's side as the node lists it (or as its peer lists the peer's
remote side, when the node did not answer), a closing channel's side of the published state.
What belongs to nobody yet (HTLCs in flight, a closing or settled channel's pending HTLC
outputs, an open channel neither end listed) is `unassigned`. Every msat starts as a deposit, so

    sum(holdings) + unassigned == sum(deposits)

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
) -> tuple[dict[str, int], int]:
    """(node name -> its side of the channel, unassigned msat) for one ledger channel; `ends`:
    the node name -> its listing ({"local_msat", "remote_msat"}) of the same channel."""
    status = ledger_channel.get("status")
    a, b = by_id.get(ledger_channel["a"], ""), by_id.get(ledger_channel["b"], "")
    capacity = int(ledger_channel.get("capacity_msat", 0))
    pending = sum(int(h["amount_msat"]) for h in ledger_channel.get("htlcs") or []
                  if h.get("outcome") == "pending")  # fmt: skip
    if status == "open":
        sides: dict[str, int] = {}
        for me, peer in ((a, b), (b, a)):
            if me in ends:
                sides[me] = int(ends[me]["local_msat"])
            elif peer in ends:
                sides[me] = int(ends[peer]["remote_msat"])
        return sides, capacity - sum(sides.values())
    if status == "closing":
        state = ledger_channel.get("state") or {}
        sides = {a: int(state.get("balance_a_msat", 0)), b: int(state.get("balance_b_msat", 0))}
        return sides, capacity - sum(sides.values())
    if status == "settled":
        return {}, pending  # the balances are paid out; the HTLC outputs wait for a claim
    return {}, 0  # closed or penalized: paid out to ledger balances


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
    in_flight = dict.fromkeys(deposits, 0)  # HTLCs in its channels, either way (unassigned)
    unassigned = 0
    for cid, ch in ledger_channels.items():
        sides, rest = channel_sides(ch, listed.get(cid, {}), by_id)
        for name, msat in sides.items():
            if name in holdings:
                holdings[name] += msat
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
        "difference_msat": total_dep - total_held - unassigned,
        "balances_read": len(balances),
    }
    return out, summary
