"""Routes of the node's control API (see control.py), used by `sgrid channel` and `sgrid pay`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.ln.channel.channel import Channel
from gateway.ln.codec import receipt
from gateway.ln.node.switch import MIN_FINAL_CLTV

if TYPE_CHECKING:
    from gateway.ln.node.node import Node


def channel_info(ch: Channel) -> dict[str, Any]:
    return {
        "channel_id": ch.channel_id.hex(),
        "peer": ch.node_ids[ch.remote].hex(),
        "state": ch.state.name,
        "capacity_msat": ch.capacity_msat,
        "local_msat": ch.local_balance,
        "remote_msat": ch.remote_balance,
        "in_flight_msat": ch.latest.in_flight_msat,
        "htlcs": len(ch.latest.htlcs),
        "commitment": ch.latest.number,
        # restored from an old backup: the peer is at this commitment; we wait for its close
        "behind": ch.extra.get("behind", {}).get("peer_latest"),
        "unsettled_updates": len(ch.pending)
        + (ch.proposal is not None)
        + ch.awaiting_revoke
        + len(ch.unrevoked_updates),
    }


def routes(node: Node) -> dict[str, Any]:
    async def info(_: dict[str, Any]) -> Any:
        # off the event loop, as every ledger read of the node's (watch.py)
        balance = await node.ledger_call(node.ledger.balance, node.node_id)
        return {
            "node_id": node.node_id.hex(),
            "port": node.port,
            "height": node.height,
            "peers": [p.hex() for p in node.peers],
            "ledger_balance_msat": balance,
            "commits": node.store.commits,
            # channel events and rounds that raised (logged rate-limited; the others went on)
            "event_failures": node.switch.failures.total,
        }

    async def channels(_: dict[str, Any]) -> Any:
        return [channel_info(c) for c in node.switch.channels.values()]

    async def connect(body: dict[str, Any]) -> Any:
        await node.connect(
            body.get("host", "127.0.0.1"), int(body["port"]), bytes.fromhex(body["node_id"])
        )
        return {"connected": body["node_id"]}

    async def open_(body: dict[str, Any]) -> Any:
        cid = await node.lifecycle.open_channel(
            bytes.fromhex(body["node_id"]), int(body["amount_msat"]), int(body.get("push_msat", 0))
        )
        return channel_info(node.switch.channels[cid])

    async def close(body: dict[str, Any]) -> Any:
        cid = bytes.fromhex(body["channel_id"])
        await node.lifecycle.close_channel(cid, bool(body.get("force", False)))
        return channel_info(node.switch.channels[cid])

    async def invoice(body: dict[str, Any]) -> Any:
        memo = receipt.EnergyMemo(
            body.get("node", node.node_id.hex()[:16]),
            int(body["start"]),
            int(body["end"]),
            kwh=body.get("kwh"),
            kw=tuple(body["kw"]) if body.get("kw") else None,
            step_s=body.get("step_s"),
        )
        count = int(body.get("count", 1))
        recs = [
            node.create_invoice(int(body["amount_msat"]), memo, commit=False) for _ in range(count)
        ]
        node.commit()  # the preimages are durable before any invoice is handed out
        return {
            "invoices": [r.invoice for r in recs],
            "payment_hashes": [r.payment_hash.hex() for r in recs],
            "payment_secrets": [
                node.switch.invoices[r.payment_hash].payment_secret.hex() for r in recs
            ],
            "memo": recs[0].memo_json,
        }

    async def pay(body: dict[str, Any]) -> Any:
        node.timeline.mark("api", "pay")
        try:
            return await _pay(body)
        finally:
            node.timeline.mark("api_done", "pay")

    async def _pay(body: dict[str, Any]) -> Any:
        timeout = float(body.get("timeout", 30))
        if "requests" in body:
            # already decoded: [payee hex, payment hash hex, amount msat, payment secret hex]
            jobs = [
                (
                    bytes.fromhex(r[0]),
                    bytes.fromhex(r[1]),
                    int(r[2]),
                    MIN_FINAL_CLTV,
                    bytes.fromhex(r[3]) if len(r) > 3 else b"",
                )
                for r in body["requests"]
            ]
            return await node.pay_many(jobs, timeout)
        if "invoices" in body:
            texts = body["invoices"]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("invoices must be a list of strings")
            return await node.pay_invoices(texts, timeout)
        return await node.pay_invoice(body["invoice"], timeout)

    async def payment(body: dict[str, Any]) -> Any:
        pay = node.switch.payments.get(bytes.fromhex(body["payment_hash"]))
        if pay is None:
            return {"status": "unknown"}
        return {"status": pay.status, "amount_msat": pay.amount_msat, "reason": pay.reason}

    async def tick(_: dict[str, Any]) -> Any:
        await node.watch_ledger()
        return {"height": node.height}

    async def timeline(_: dict[str, Any]) -> Any:
        return node.timeline.take()

    return {
        "GET /info": info,
        "GET /timeline": timeline,
        "GET /channels": channels,
        "POST /connect": connect,
        "POST /open": open_,
        "POST /close": close,
        "POST /invoice": invoice,
        "POST /pay": pay,
        "POST /tick": tick,
        "POST /payment": payment,
    }
