"""The rig's requests to a running emulated board (its control socket, boards/emulated/host/
control.py): the board's state, S0 pulses, inputs, the site's network time, a wrongly set clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boards.emulated.host.board import EmulatedBoard

INPUTS = ("button",)


def answer(board: EmulatedBoard, req: dict[str, Any]) -> Any:
    op = req.get("op")
    if op == "state":
        return _state(board)
    if op == "pulses":
        if "s0" not in board.profile["features"]:
            raise ValueError(f"board profile {board.config.profile} has no S0 input")
        n = int(req["n"])
        if n < 0:
            raise ValueError("pulse count must be >= 0")
        with board.lock:
            board.pulses[req.get("pin", "s0")] += n
        board.wake.set()
        return board.pulses[req.get("pin", "s0")]
    if op == "rtc_shift":  # somebody sets the board's clock wrong (the bench's clock fault)
        board.rtc_shift(float(req["seconds"]))
        return board.rtc_now()
    if op == "network_time":  # the site's NTP server comes (or goes)
        board.config.ntp = bool(req["value"])
        return board.config.ntp
    if op == "set_input":
        pin = req["pin"]
        if pin not in INPUTS:
            raise KeyError(f"{pin!r} is not an input (inputs: {', '.join(INPUTS)})")
        with board.lock:
            board.gpio[pin] = 1 if req["value"] else 0
        board.wake.set()
        return board.gpio[pin]
    raise ValueError(f"unknown control op {op!r}")


def _state(board: EmulatedBoard) -> dict[str, Any]:
    cfg = board.config
    with board.lock:
        return {
            "board_id": cfg.board_id,
            "boots": board.boots,
            "gpio": dict(board.gpio),
            "pulses": dict(board.pulses),
            "uarts": {n: u.path for n, u in board.uarts.items()},
            "console": board.console.path,
            "console_mode": board.console.mode,
            "image": board.image,
            "profile": cfg.profile,
            "pins": board.profile.get("pins", {}),
            "features": board.profile["features"],
            "soft_resets": board.soft_resets,
            "reports": dict(board.reports),
            "heap_bytes": cfg.heap_bytes,
            "code_ram": board.code_ram,
            "rtc": board.rtc_now(),
            "virtual_now": cfg.clock.now(),
            "fuel": board.vm.fuel_used() if board.vm else 0,
        }
