"""A child process's output, read line by line on a thread and waited on with a timeout."""

from __future__ import annotations

import queue
import threading
import time
from typing import IO

__all__ = ["Output"]


class Output:
    """The lines ``stream`` has printed: those a wait looked at, and those still to come."""

    def __init__(self, stream: IO[str]) -> None:
        #: Lines already looked at by :meth:`wait_for` (or gathered by :attr:`text`).
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._stream = stream
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stream:
            self._queue.put(line)

    def wait_for(self, text: str, timeout: float = 60, *, fresh: bool = False) -> str:
        """The first line holding ``text``: among those seen already (unless ``fresh``), or
        the next ones; fails with everything printed so far after ``timeout`` seconds."""
        if not fresh:
            for line in self.lines:
                if text in line:
                    return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in:\n{self.text}") from None
            self.lines.append(line)
            if text in line:
                return line

    @property
    def text(self) -> str:
        """Everything printed so far."""
        while not self._queue.empty():
            self.lines.append(self._queue.get_nowait())
        return "".join(self.lines)

    def close(self) -> None:
        """Once the process is gone: read to the end, then close."""
        self._reader.join(10)
        self._stream.close()
