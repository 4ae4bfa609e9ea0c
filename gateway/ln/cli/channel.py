"""`sgrid channel ...` and `sgrid pay`: drive a running channel node through its control API.

The node runs as ``sgrid channel node --data-dir D --ledger-file L`` (or --ledger-url); the other
commands talk to it at --node-url (env SGRID_NODE_URL, default http://127.0.0.1:9736) with the
node's control token from --token-file (env SGRID_NODE_TOKEN_FILE).
"""

from __future__ import annotations

import json
from typing import Any

import click

from gateway.ln.cli.node_options import NODE_URL
from gateway.ln.errors import LnError
from gateway.ln.node.control import call


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


@channel.command(
    "node",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def node(args: tuple[str, ...]) -> None:
    """Run a stand-alone channel node (its options: `sgrid channel node --help`).

    A grid node runs it inside `sgrid gateway run` instead ([node] in the gateway config)."""
    from gateway.ln.node.main import main

    main(list(args), prog="sgrid channel node")


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


def _add_receive() -> None:
    from gateway.ln.cli.invoice import create

    channel.add_command(create, "receive")  # the same command as `sgrid invoice create`


_add_receive()


@channel.command("offer")
@NODE_URL
@click.argument("invoice")
@click.option("--memo", "memo_file", type=click.File("r"), help="Memo JSON of an `h` receipt.")
def offer(node_url: str, invoice: str, memo_file: Any) -> None:
    """Offer one of this node's receipts to its channel neighbours (`sg_receipt_offer`).

    Needs a grid node (`sgrid gateway run` with [node]): neighbours pay or forward it."""
    body: dict[str, Any] = {"invoice": invoice}
    if memo_file is not None:
        body["memo"] = memo_file.read().strip()
    _echo(_call(node_url, "/offer", body))


@channel.command("buy")
@NODE_URL
@click.option("--wh", type=click.IntRange(1, 10_000_000), required=True, help="Energy in Wh.")
@click.option("--start", type=int, help="Delivery window start, unix s (default: next hour).")
@click.option("--end", type=int, help="Delivery window end, unix s (default: start + 1 h).")
def buy(node_url: str, wh: int, start: int | None, end: int | None) -> None:
    """Buy energy from the POD as the last resort: it issues a receipt, this node pays it.

    Needs a grid node whose market.forward_to names the POD; the credit goes to node.meter."""
    import time

    start = start or (int(time.time()) // 3600 + 1) * 3600
    result = _call(node_url, "/buy", {"wh": wh, "start": start, "end": end or start + 3600})
    _echo(result)
    if result.get("status") != "succeeded":
        raise SystemExit(1)


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
