"""`sgrid channel ...` and `sgrid pay`: drive a running channel node through its control API.

The node runs as ``sgrid channel node --data-dir D --ledger-file L`` (or --ledger-url); the other
commands talk to it at --node-url (env SGRID_NODE_URL, default http://127.0.0.1:9736).
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from gateway.ln.errors import LnError
from gateway.ln.node.control import call

NODE_URL = click.option(
    "--node-url",
    envvar="SGRID_NODE_URL",
    default="http://127.0.0.1:9736",
    show_default=True,
    help="Control API of the running channel node (env SGRID_NODE_URL).",
)


def _call(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        return call(url, path, body)
    except LnError as exc:
        raise click.ClickException(str(exc)) from exc


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


@click.group("channel")
def channel() -> None:
    """Payment channels between gateways (Lightning-style, BOLT-8 transport)."""


@channel.command("node", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def node(args: tuple[str, ...]) -> None:
    """Run the channel node (options: see `sgrid channel node --help`)."""
    from gateway.ln.node.main import main

    main(list(args))


@channel.command("list")
@NODE_URL
def list_(node_url: str) -> None:
    """Channels with state, balances and HTLCs in flight (msat)."""
    _echo(_call(node_url, "/channels"))


@channel.command("info")
@NODE_URL
def info(node_url: str) -> None:
    """This node's id, port, peers, ledger balance and store commits (fsyncs)."""
    _echo(_call(node_url, "/info"))


@channel.command("connect")
@NODE_URL
@click.argument("peer")
def connect(node_url: str, peer: str) -> None:
    """Connect to PEER given as <node id hex>@<host>:<port>."""
    try:
        node_id, addr = peer.split("@")
        host, port = addr.rsplit(":", 1)
    except ValueError as exc:
        raise click.BadParameter("expected <node id>@<host>:<port>") from exc
    _echo(_call(node_url, "/connect", {"node_id": node_id, "host": host, "port": int(port)}))


@channel.command("open")
@NODE_URL
@click.argument("peer_id")
@click.argument("amount_msat", type=click.IntRange(min=1))
@click.option("--push-msat", type=click.IntRange(min=0), default=0, help="Funded by the peer.")
def open_(node_url: str, peer_id: str, amount_msat: int, push_msat: int) -> None:
    """Open a channel to a connected PEER_ID, funding AMOUNT_MSAT from our ledger balance."""
    body = {"node_id": peer_id, "amount_msat": amount_msat, "push_msat": push_msat}
    _echo(_call(node_url, "/open", body))


@channel.command("close")
@NODE_URL
@click.argument("channel_id")
@click.option("--force", is_flag=True, help="Unilateral: publish our latest state on the ledger.")
def close(node_url: str, channel_id: str, force: bool) -> None:
    """Close CHANNEL_ID cooperatively (or --force: unilaterally, paid after the dispute window)."""
    _echo(_call(node_url, "/close", {"channel_id": channel_id, "force": force}))


@channel.command("receive")
@NODE_URL
@click.option("--amount-msat", type=click.IntRange(min=1), required=True)
@click.option("--kwh", type=float, help="Energy quantity in kWh (memo).")
@click.option("--start", type=int, help="Delivery window start, unix s (default: next hour).")
@click.option("--end", type=int, help="Delivery window end, unix s (default: start + 1 h).")
@click.option("--node", "grid_node", help="Issuer grid node id (memo).")
def receive(
    node_url: str,
    amount_msat: int,
    kwh: float | None,
    start: int | None,
    end: int | None,
    grid_node: str | None,
) -> None:
    """Issue an energy receipt through the node, which keeps its preimage to get paid."""
    start = start or (int(time.time()) // 3600 + 1) * 3600
    body: dict[str, Any] = {"amount_msat": amount_msat, "start": start, "end": end or start + 3600}
    if kwh is not None:
        body["kwh"] = kwh
    if grid_node:
        body["node"] = grid_node
    _echo(_call(node_url, "/invoice", body))


@click.command("pay")
@NODE_URL
@click.argument("invoice")
@click.option("--timeout", type=float, default=30, show_default=True)
def pay(node_url: str, invoice: str, timeout: float) -> None:
    """Pay an energy receipt (BOLT-11 invoice) atomically, over one or several channels."""
    result = _call(node_url, "/pay", {"invoice": invoice, "timeout": timeout})
    _echo(result)
    if result.get("status") != "succeeded":
        raise SystemExit(1)
