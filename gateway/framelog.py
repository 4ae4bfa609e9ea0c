"""A ring buffer of the last frames on a link, dumped to the log when something fails."""

from __future__ import annotations

import logging
import time
from collections import deque

log = logging.getLogger(__name__)


class FrameLog:
    def __init__(self, link: str, size: int = 32) -> None:
        self.link = link
        self._frames: deque[tuple[float, bool, bytes | tuple[str, bytes]]] = deque(maxlen=size)

    def add(self, received: bool, frame: bytes) -> None:
        self._frames.append((time.time(), received, bytes(frame)))

    def add_message(self, received: bool, topic: str, payload: bytes) -> None:
        """An MQTT message, kept as it is (immutable) and formatted only if dumped."""
        self._frames.append((time.time(), received, (topic, payload)))

    @staticmethod
    def _bytes(frame: bytes | tuple[str, bytes]) -> bytes:
        if isinstance(frame, tuple):
            return frame[0].encode() + b" " + frame[1][:200]
        return frame

    def frames(self) -> list[tuple[float, bool, bytes]]:
        return [(t, received, self._bytes(frame)) for t, received, frame in self._frames]

    def dump(self, why: str, logger: logging.Logger = log) -> str:
        """Log (at WARNING) and return the buffered frames, oldest first."""
        lines = [f"{self.link}: last {len(self._frames)} frames before {why}:"]
        for t, received, frame in self.frames():
            lines.append(f"  {t:.3f} {'<-' if received else '->'} {frame.hex(' ')}")
        text = "\n".join(lines)
        logger.warning("%s", text)
        return text
