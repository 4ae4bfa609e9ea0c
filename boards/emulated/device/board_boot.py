# The emulated board's boot ROM helpers (the part of a real port that is C: pyexec's REPL loop).
# The console protocol itself is parsed by the board process (boards/emulated/host/console.py);
# this side runs what it hands over, in the firmware's VM, with the flash mounted.
import json
import os
import sys

import host
from micropython import const

_SOFT_RESET_EXIT = const(4)


def host_call(name, arg=None):
    # the bridge to the board process; a Ctrl-C on the console arrives as the reply to any call
    # (the reply: [0, value] or [1, "error"], boards/emulated/host/bridge.py)
    reply = json.loads(host.call(name, "" if arg is None else json.dumps(arg)))
    if reply[0]:
        if reply[1].startswith("ConsoleInterrupt"):
            raise KeyboardInterrupt
        raise OSError(reply[1])
    return reply[1]


def image_root():
    # an image copied onto the flash (as on a real board) wins over the factory image in ROM
    try:
        os.stat("/flash/main.py")
        os.stat("/flash/lib")
        return "/flash"
    except OSError:
        return "/rom"


def prepare():
    root = image_root()
    sys.path[:] = [root + "/lib", root, ""]
    os.chdir("/flash")


def runs_firmware():
    return host_call("console_boot") == "app"


def run_firmware():
    # A KeyboardInterrupt (Ctrl-C on the console) is not caught here: catching an exception
    # that left a module whose top level collected garbage traps this WASI build (reproduced).
    # It ends the VM instead, and the board process boots a fresh one into the REPL.
    __import__("main")
    sys.exit(0)  # the firmware returned: the board stops (tests run such images)


_GLOBALS = {"__name__": "__main__"}


def serve_one():
    """Take one unit of work from the console and run it (boot.py calls this at top level)."""
    try:
        work = host_call("repl_next")
    except KeyboardInterrupt:
        return  # a Ctrl-C with nothing running
    _run(work, _GLOBALS)


def _run(work, g):
    op = work["op"]
    if op != "exec":
        sys.exit(_SOFT_RESET_EXIT)  # soft reset: the board process starts a fresh VM
    raw = work["mode"] == "raw"
    try:
        if raw:
            exec(work["code"], g)
        else:
            exec(compile(work["code"], "<stdin>", "single"), g)
    except SystemExit as exc:
        if raw:
            sys.stdout.write("\x04\x04")
        code = exc.args[0] if exc.args else 0
        sys.exit(code if code == 3 else _SOFT_RESET_EXIT)  # 3: machine.reset()
    except BaseException as exc:  # noqa: B036  (the REPL reports everything, as pyexec does)
        if raw:
            sys.stdout.write("\x04")
        sys.print_exception(exc, sys.stdout)
        if raw:
            sys.stdout.write("\x04")
        return
    if raw:
        sys.stdout.write("\x04\x04")
