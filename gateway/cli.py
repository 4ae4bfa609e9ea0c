"""`sgrid`: the one command-line entry point of Seamless Grid.

Each area owns its click group in its own module; this file only assembles them.
To add one, append ("module.path", "attribute") to COMMANDS.
"""

from __future__ import annotations

import importlib
import logging

import click

COMMANDS: tuple[tuple[str, str], ...] = (
    ("boards.emulated.host.cli", "board"),
    ("gateway.ledger.cli", "ledger"),
    ("hil_tests.rig.sim", "sim"),
    ("gateway.service.cli", "gateway"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="seamless-grid")
def main(verbose: int) -> None:
    """Seamless Grid: peer-to-peer microgrid trading with meters that release only paid-for energy.

    \b
    Start with:
      sgrid sim --help              the simulated microgrid on emulated boards
      sgrid board emulate --help    one emulated ESP32 meter running the real firmware
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


for _module, _attr in COMMANDS:
    main.add_command(getattr(importlib.import_module(_module), _attr))
