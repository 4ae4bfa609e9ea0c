"""What a close must leave behind, checked without counting what other tests' threads do.

An xdist worker runs other tests' leftover daemon threads (a broker client, a board's pump) that
may end, or open sockets, at any moment: `threading.active_count()` or every open descriptor
compared before and after would fail for them. So a test names its own threads (those started
since its snapshot) and its own kind of descriptors (ttys and pipes: what a serial line, console
or wake-up line holds).
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from collections.abc import Iterator


def threads_now() -> set[threading.Thread]:
    return set(threading.enumerate())


def started_since(
    before: set[threading.Thread], named: tuple[str, ...] = ("",)
) -> set[threading.Thread]:
    """Threads started since `before` whose name starts with one of `named`."""
    return {t for t in threading.enumerate() if t not in before and t.name.startswith(named)}


def tty_and_pipe_fds() -> set[tuple[int, str]]:
    """(number, what it is) of every open tty or pipe descriptor of this process."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile (the listing's own descriptor among them)
            continue
        if target.startswith(("/dev/pts/", "/dev/ptmx", "pipe:")):
            out.add((int(name), target))
    return out


@contextlib.contextmanager
def descriptors_above(n: int) -> Iterator[None]:
    """Inside, the next descriptors this process opens are numbered above `n` (the numbers below
    are held by /dev/null; the open-file limit is raised for it and put back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 170:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n + 170, hard), hard))
    filler = []
    try:
        while (fd := os.open(os.devnull, os.O_RDONLY)) < n + 6:
            filler.append(fd)
        filler.append(fd)
        yield
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
