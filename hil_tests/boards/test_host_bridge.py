"""The guest's host.call bridge (boards/emulated/host/bridge.py): values both ways, errors reported
to the guest, a reply too big for the guest's buffer, and SystemExit raised by a host function
ending the VM's run as it did through wasmtime.Func."""

import json
import signal
import subprocess
import sys

import pytest

from boards.emulated.host.wasm import HOST_RESULT_CAP, run_snippet

CALL = "import host, json\ndef call(name, arg=None):\n    return json.loads(host.call(name, '' if arg is None else json.dumps(arg)))\n"


def replies(stdout: str) -> list:
    return [json.loads(line) for line in stdout.split("\n") if line.strip()]


def test_values_cross_both_ways():
    seen = []
    out = run_snippet(
        CALL
        + "print(json.dumps(call('echo', {'a': [1, 2, 'é']})))\nprint(json.dumps(call('echo')))\n",
        host_functions={"echo": lambda arg: seen.append(arg) or arg},
    )
    assert out.exit_code == 0, out.stderr
    assert replies(out.stdout) == [[0, {"a": [1, 2, "é"]}], [0, None]]
    assert seen == [{"a": [1, 2, "é"]}, None]


def test_errors_are_replies_not_crashes():
    def boom(_):
        raise ValueError("bad pin")

    out = run_snippet(
        CALL + "print(json.dumps(call('boom')))\nprint(json.dumps(call('nope')))\n",
        host_functions={"boom": boom},
    )
    assert out.exit_code == 0, out.stderr
    assert replies(out.stdout) == [
        [1, "ValueError: bad pin"],
        [1, "KeyError: \"no host function 'nope'\""],
    ]


def test_a_reply_beyond_the_cap_is_refused_by_the_guest():
    big = "x" * (HOST_RESULT_CAP + 10)
    out = run_snippet(
        "import host\ntry:\n    host.call('big', 'null')\nexcept Exception as e:\n"
        "    print('refused', type(e).__name__)\nprint(host.call('small', 'null'))\n",
        host_functions={"big": lambda _: big, "small": lambda _: 7},
    )
    assert out.exit_code == 0, out.stderr
    assert out.stdout.split("\n")[1] == "[0,7]"
    assert out.stdout.startswith("refused")


def test_system_exit_in_a_host_function_ends_the_run():
    def leave(_):
        raise SystemExit(5)

    with pytest.raises(SystemExit):
        run_snippet(CALL + "call('leave')\nprint('after')\n", host_functions={"leave": leave})


def test_a_process_that_ran_a_vm_exits_cleanly(repo_root):
    # the bridge's functions used to carry a Python finalizer that wasmtime called at interpreter
    # exit, after ctypes had freed it: every process that ran a VM exited with SIGSEGV (139)
    script = (
        "from boards.emulated.host.wasm import run_snippet\n"
        f"out = run_snippet({CALL!r} + 'print(call(\"echo\", 7))', host_functions={{'echo': lambda a: a}})\n"
        "print(out.stdout.strip())\n"
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], cwd=repo_root, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    # not == 0: at exit a wasmtime thread may still print a teardown panic ("panic in a function
    # that cannot unwind"), a known wasmtime-py behaviour with a custom stdout; no segfault
    assert done.returncode != -signal.SIGSEGV, done.stderr[-2000:]
    assert "[0, 7]" in done.stdout
