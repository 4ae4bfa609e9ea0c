"""The options every command that talks to a running channel node takes."""

from __future__ import annotations

import os
from typing import Any

import click

TOKEN_FILE_DEFAULT = "/var/lib/seamless-grid/node/control_token"


def _token_file(ctx: click.Context, param: click.Parameter, value: str) -> str:
    os.environ["SGRID_NODE_TOKEN_FILE"] = value  # read by control.call
    return value


def NODE_URL(f: Any) -> Any:  # noqa: N802 - used like the option decorators it stacks
    """--node-url and --token-file: where the node's control API is, and its credential."""
    f = click.option(
        "--token-file",
        envvar="SGRID_NODE_TOKEN_FILE",
        default=TOKEN_FILE_DEFAULT,
        show_default=True,
        expose_value=False,
        callback=_token_file,
        help="The node's control token (<data dir>/control_token, mode 0600; env "
        "SGRID_NODE_TOKEN_FILE): whoever can read it can spend the node's funds.",
    )(f)
    return click.option(
        "--node-url",
        envvar="SGRID_NODE_URL",
        default="http://127.0.0.1:9736",
        show_default=True,
        help="Control API of the running channel node (env SGRID_NODE_URL).",
    )(f)
