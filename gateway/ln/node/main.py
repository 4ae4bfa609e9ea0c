"""The channel node process: ledger adapter, node, control API, then one READY line.

    uv run python -m gateway.ln.node --data-dir D --ledger-file L [--port 9735 --control-port 9736]

It prints one line ``READY {"node_id": ..., "port": ..., "control": ...}`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.node.api import routes
from gateway.ln.node.control import IDLE_TIMEOUT_S, MAX_CONNECTIONS, serve_control
from gateway.ln.node.control_guard import load_or_create_token
from gateway.ln.node.ledger_port import LedgerPort
from gateway.ln.node.node import Node
from gateway.ln.node.timeline import Timeline


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--listen", default="127.0.0.1", help="peer port address (0.0.0.0: all)")
    ap.add_argument("--port", type=int, default=0, help="BOLT-8 peer port (0: any free one)")
    ap.add_argument("--control-port", type=int, default=0, help="control API port on 127.0.0.1")
    ap.add_argument("--ledger-file", type=Path, help="shared SQLite ledger (tests, demos)")
    ap.add_argument("--ledger-url", help="the real ledger node's HTTP API")
    ap.add_argument("--base-fee-msat", type=int, default=1000)
    ap.add_argument("--fee-ppm", type=int, default=100)
    ap.add_argument("--cltv-delta", type=int, default=6)
    ap.add_argument("--refuse-forwarding", action="store_true")
    ap.add_argument(
        "--accept-max-msat",
        type=int,
        default=0,
        help="most of our balance to commit to a channel a peer opens to us (default 0)",
    )
    ap.add_argument("--tick", type=float, default=0.2)
    ap.add_argument(
        "--timeline",
        type=int,
        default=0,
        metavar="N",
        help="keep the last N timing marks for GET /timeline (default 0: off)",
    )
    ap.add_argument(
        "--control-idle-timeout",
        type=float,
        default=IDLE_TIMEOUT_S,
        help=f"seconds a kept-alive control connection may idle (default {IDLE_TIMEOUT_S:g})",
    )
    ap.add_argument(
        "--control-max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        help=f"control API connections open at once (default {MAX_CONNECTIONS})",
    )
    ap.add_argument("-v", "--verbose", action="count", default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    ledger: LedgerPort
    if args.ledger_url:
        from gateway.ln.node.ledger_http import HttpLedger

        ledger = HttpLedger(args.ledger_url)
    elif args.ledger_file:
        from gateway.ln.node.ledger_file import FileLedger

        ledger = FileLedger(args.ledger_file)
    else:
        ap.error("give --ledger-file or --ledger-url")
    policy = FeePolicy(args.base_fee_msat, args.fee_ppm, args.cltv_delta)

    async def run() -> None:
        node = Node(
            args.data_dir, ledger, policy, host=args.listen, accept_max_msat=args.accept_max_msat
        )
        node.switch.refuse_forwarding = args.refuse_forwarding
        node.timeline = Timeline(args.timeline)
        await node.start(args.port, args.tick)
        token = load_or_create_token(args.data_dir)
        ctl = await serve_control(
            "127.0.0.1",
            args.control_port,
            routes(node),
            token,
            max_connections=args.control_max_connections,
            mark=node.timeline.mark,
            idle_timeout_s=args.control_idle_timeout,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        control_port = ctl.sockets[0].getsockname()[1]
        info = {"node_id": node.node_id.hex(), "port": node.port, "control": control_port}
        print("READY " + json.dumps(info), flush=True)
        await stop.wait()
        ctl.close()
        await node.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
