"""A real headless Chromium (Debian's `chromium-headless-shell` or `chromium`) driven over the
DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages separated by NUL on fds 3
and 4), so a test can load a page as a person's browser would, evaluate JavaScript in it and
collect every console message and load error. No websocket library and no browser download.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BINARIES = ("chromium-headless-shell", "chromium", "chromium-browser")


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for name in BINARIES:
        path = shutil.which(name) or (f"/usr/lib/chromium/{name}" if name != "chromium" else None)
        if path and os.access(path, os.X_OK):
            return path
    return None


def _moved_up(fd: int) -> int:
    """`fd` under a number >= 10 (the old number is closed)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Page:
    """One browser with one page. `open(url)` loads it; `eval(js)` returns the value; `console`
    holds every console message and log entry (level, text) seen since start."""

    def __init__(self, binary: str | None = None, timeout: float = 30.0) -> None:
        binary = binary or find_chromium()
        if binary is None:
            raise BrowserError(f"no Chromium found (looked for {', '.join(BINARIES)})")
        self.timeout = timeout
        self.console: list[tuple[str, str]] = []
        self._id = 0
        self._buf = b""
        self._profile = tempfile.mkdtemp(prefix="sgrid-chromium-")
        self._closed = False
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        # the pipe ends become fds 3 and 4, as Chromium expects, by the shell's redirections:
        # no preexec_fn (Python code between fork and exec can deadlock in a threaded process);
        # first moved to numbers >= 10, so that no redirection overwrites the other end
        to_browser_r, from_browser_w = _moved_up(to_browser_r), _moved_up(from_browser_w)
        self._proc = subprocess.Popen(
            [
                "/bin/bash",  # not dash: its redirections take one-digit numbers only
                "-c",
                f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
                f" {to_browser_r}<&- {from_browser_w}>&-",
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}",
                "--no-first-run",
                "about:blank",
            ],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        targets = self._call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self._session = self._call(
            "Target.attachToTarget", targetId=page["targetId"], flatten=True
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self._call(f"{domain}.enable", session=True)

    def open(self, url: str) -> None:
        self._call("Page.navigate", session=True, url=url)
        self._wait_event("Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        res = self._call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression!r} raised: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        import base64

        data = self._call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Quit the browser and close its pipe. Later calls do nothing (a second os.close of the
        same numbers would close whatever files took them meanwhile)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._send("Browser.close")
            self._proc.wait(timeout=5)
        except Exception:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the protocol ---

    def _send(self, method: str, session: bool = False, **params: Any) -> int:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        return self._id

    def _call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        want = self._send(method, session, **params)
        while True:
            msg = self._read()
            if msg.get("id") == want:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def _wait_event(self, method: str) -> dict[str, Any]:
        while True:
            msg = self._read()
            if msg.get("method") == method:
                return msg

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or self._proc.poll() is not None:
                raise BrowserError("Chromium did not answer in time (or exited)")
            lines = select.poll()  # not select: a sim's rig may hold descriptors above 1024
            lines.register(self._from_browser, select.POLLIN)
            if not lines.poll(min(left, 1.0) * 1000):
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        self._note(msg)
        return msg

    def _note(self, msg: dict[str, Any]) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            self.console.append((p["type"], text))
        elif method == "Runtime.exceptionThrown":
            self.console.append(("exception", str(p["exceptionDetails"].get("text"))))
        elif method == "Log.entryAdded":
            e = p["entry"]
            self.console.append((e["level"], e.get("text", "")))
