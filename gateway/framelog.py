"""A ring buffer of the last frames on a link, dumped to the log when something fails."""

from __future__ import annotations

import logging
import time
from collections import deque

log = logging.getLogger(__name__)


class FrameLog:
    def __init__(self, link: str, size: int = 32) -> None:
        self.link = link
        self._frames: deque[tuple[float, bool, bytes]] = deque(maxlen=size)

    def add(self, received: bool, frame: bytes) -> None:
        self._frames.append((time.time(), received, bytes(frame)))

    def frames(self) -> list[tuple[float, bool, bytes]]:
        return list(self._frames)

    def dump(self, why: str, logger: logging.Logger = log) -> str:
        """Log (at WARNING) and return the buffered frames, oldest first."""
        lines = [f"{self.link}: last {len(self._frames)} frames before {why}:"]
        for t, received, frame in self._frames:
            lines.append(f"  {t:.3f} {'<-' if received else '->'} {frame.hex(' ')}")
        text = "\n".join(lines)
        logger.warning("%s", text)
        return text
