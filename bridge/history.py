"""The history on disk, so that it outlives a restart of the instance.

One JSON event per line, appended as each event is accepted and before its
message is acknowledged: a write reaches the kernel at once, so even SIGKILL
loses nothing. The file is rewritten with only the recent events once it
grows to several times the history size.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from typing import BinaryIO

from schemas import Event, Reader, SchemaError

__all__ = ["HistoryFile"]

log = logging.getLogger("bridge.history")

_COMPACT_FACTOR = 4


class HistoryFile:
    """Appends events to ``path`` and reads back the last ``size`` of them with ``reader``."""

    def __init__(self, path: Path, *, size: int, reader: Reader) -> None:
        self._path = path
        self._reader = reader
        self._recent: deque[bytes] = deque(maxlen=size)
        self._lines = 0
        self._file: BinaryIO | None = None

    def open(self) -> list[Event]:
        """Start appending; returns the last events saved, oldest first.

        Lines that do not parse are skipped. A last line cut short by a crash
        is cut off the file, so that the next event starts a line of its own.
        """
        # Events may carry personal data: the folder and the file are the bridge user's only.
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._path.exists():
            self._path.chmod(0o600)
            whole = 0  # bytes of complete lines
            with self._path.open("rb") as file:
                for line in file:
                    if not line.endswith(b"\n"):
                        log.warning(
                            "history line cut short by a crash dropped",
                            extra={"path": str(self._path), "bytes": len(line)},
                        )
                        break
                    whole += len(line)
                    self._lines += 1
                    self._recent.append(line.rstrip(b"\n"))
            os.truncate(self._path, whole)
        events = [event for line in self._recent if (event := self._parse(line))]
        self._reopen()
        return events

    def append(self, line: bytes) -> None:
        """Save one encoded event."""
        assert self._file is not None, "open() first"
        self._file.write(line + b"\n")
        self._recent.append(line)
        self._lines += 1
        if self._lines > _COMPACT_FACTOR * (self._recent.maxlen or 1):
            self._reopen()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _parse(self, line: bytes) -> Event | None:
        try:
            return self._reader.event(line)
        except SchemaError as exc:
            log.warning("history line skipped", extra={"path": str(self._path), "reason": str(exc)})
            return None

    def _reopen(self) -> None:
        self.close()
        if self._lines > _COMPACT_FACTOR * (self._recent.maxlen or 1):
            partial = self._path.with_suffix(".tmp")
            partial.unlink(missing_ok=True)  # one left by a crash keeps its own mode
            with open(partial, "wb", opener=_private) as file:
                file.write(b"".join(line + b"\n" for line in self._recent))
            os.replace(partial, self._path)
            self._lines = len(self._recent)
        # Held open across appends, closed by close(): no context manager fits.
        self._file = open(self._path, "ab", buffering=0, opener=_private)  # noqa: SIM115


def _private(path: str, flags: int) -> int:
    """Open ``path`` as ``open`` would, creating it readable by this user only."""
    return os.open(path, flags, 0o600)
