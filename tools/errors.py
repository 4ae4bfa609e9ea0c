"""The tools' one exception tree: every refusal of `sgrid build/flash/provision/ota` is a ToolError
whose message says what is wrong and what to do; the CLI prints it and exits non-zero."""

from __future__ import annotations


class ToolError(Exception):
    """Root of every error the tools raise on purpose."""


class BoardError(ToolError):
    """Unknown board, or a board description (boards/<id>/board.json) that is incomplete."""


class BuildError(ToolError):
    """mpy-cross refused a module, or the image does not fit the board."""


class FlashError(ToolError):
    """No port, the wrong chip on the port, a failed esptool/mpremote step."""


class ProvisionError(ToolError):
    """A config the firmware would refuse, or a meter that cannot be reached."""


class OtaError(ToolError):
    """A bundle that cannot be built, signed, read or published."""
