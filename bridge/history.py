"""The history on disk, so that it outlives a restart of the instance.

One line per event, appended as each event is accepted and before its
message is acknowledged: a write reaches the kernel at once, so even SIGKILL
loses nothing. A line is ``<received> <event JSON>``, the time the bridge
accepted it (seconds since the epoch) first, so that an event's age counts
across restarts; lines of earlier versions, the JSON alone, are read as
received at start-up. Once ``compact_every`` lines were appended, the file is
rewritten with what the history holds: the events still kept, and for each
other recent event a short line ``<received> =<id> <stream>``, its position
only, which says that its stream let it go.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from bridge.streams import Entry, Streams
from schemas import Event, Reader, SchemaError

__all__ = ["HistoryFile", "Saved", "saved_lines"]

log = logging.getLogger("bridge.history")

#: What a line holds: when the event was received, and the event, or the id and
#: stream of one whose body its stream let go.
Saved = tuple[float, Event | tuple[str, str]]


def event_line(entry: Entry) -> bytes:
    """The line of an event that is kept."""
    return b"%.3f %b\n" % (entry.received, entry.json)


def position_line(received: float, event_id: str, stream: str) -> bytes:
    """The line of an event whose stream let it go: its position only."""
    return b"%.3f =%b %b\n" % (received, event_id.encode(), stream.encode())


def saved_lines(streams: Streams) -> Iterator[bytes]:
    """What ``streams`` hold, as the lines of a compacted file."""
    for received, event_id, stream, entry in streams.positions():
        yield position_line(received, event_id, stream) if entry is None else event_line(entry)


class HistoryFile:
    """Appends events to ``path``; reads them back with ``reader``.

    ``saved`` gives the lines of what the history holds, oldest first, to
    rewrite the file with once ``compact_every`` lines were appended.
    """

    def __init__(
        self,
        path: Path,
        *,
        reader: Reader,
        saved: Callable[[], Iterable[bytes]],
        compact_every: int,
    ) -> None:
        self._path = path
        self._reader = reader
        self._saved = saved
        self._compact_every = compact_every
        self._appended = 0
        self._file: BinaryIO | None = None

    def open(self) -> list[Saved]:
        """Start appending; returns what was saved, oldest first.

        Lines that do not parse are skipped. A last line cut short by a crash
        is cut off the file, so that the next event starts a line of its own.
        """
        # Events may carry personal data: the folder and the file are the bridge user's only.
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        saved: list[Saved] = []
        if self._path.exists():
            self._path.chmod(0o600)
            now = time.time()
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
                    self._appended += 1
                    item = self._parse(line.rstrip(b"\n"), now)
                    if item is not None:
                        saved.append(item)
            os.truncate(self._path, whole)
        self._reopen()
        return saved

    def append(self, entry: Entry) -> None:
        """Save one accepted event."""
        assert self._file is not None, "open() first"
        self._file.write(event_line(entry))
        self._appended += 1
        if self._appended > self._compact_every:
            self._compact()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _parse(self, line: bytes, now: float) -> Saved | None:
        received, body = now, line
        if not line.startswith(b"{"):
            stamp, _, body = line.partition(b" ")
            try:
                received = float(stamp)
            except ValueError:
                reason = "it starts with neither a time nor an event"
                log.warning(
                    "history line skipped", extra={"path": str(self._path), "reason": reason}
                )
                return None
        if body.startswith(b"="):
            event_id, _, stream = body[1:].decode(errors="replace").partition(" ")
            return received, (event_id, stream)
        try:
            return received, self._reader.event(body)
        except SchemaError as exc:
            log.warning("history line skipped", extra={"path": str(self._path), "reason": str(exc)})
            return None

    def _compact(self) -> None:
        self.close()
        partial = self._path.with_suffix(".tmp")
        partial.unlink(missing_ok=True)  # one left by a crash keeps its own mode
        with open(partial, "wb", opener=_private) as file:
            file.writelines(self._saved())
        os.replace(partial, self._path)
        self._appended = 0
        self._reopen()

    def _reopen(self) -> None:
        self.close()
        # (A file that grew past compact_every in an earlier run is compacted at the
        # next append, once the history it holds is loaded.)
        # Held open across appends, closed by close(): no context manager fits.
        self._file = open(self._path, "ab", buffering=0, opener=_private)  # noqa: SIM115


def _private(path: str, flags: int) -> int:
    """Open ``path`` as ``open`` would, creating it readable by this user only."""
    return os.open(path, flags, 0o600)
