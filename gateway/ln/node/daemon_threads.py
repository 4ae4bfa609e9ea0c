"""An executor that runs each call in a daemon thread of its own: for the node's ledger calls.

A ledger that takes a request and never answers holds the calling thread for the client's
timeout and retries (15 s, 3 times). asyncio's default executor joins its threads when the
process exits, so a node stopped meanwhile (SIGTERM, `systemctl stop`) waited that long
before it exited. A daemon thread is not waited for: the node exits once it has committed and
closed its store. What the call was doing is lost as if the process had been killed: every
ledger submission of the node is idempotent and submitted again after the restart, and a read
is only a read. Ledger calls are few (a tick's read, its submissions, a look-up per announced
channel), so a thread apiece costs nothing that shows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonThreads(Executor):
    def __init__(self, name: str) -> None:
        self.name = name

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        fut: Future[T] = Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as any executor
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        threading.Thread(target=run, name=self.name, daemon=True).start()
        return fut
