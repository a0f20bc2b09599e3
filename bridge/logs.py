"""Structured logs: one ``key=value`` line per record, easy to read and to grep.

Pass fields with ``extra``: ``log.info("connection opened", extra={"conn": 3})``
prints ``… level=info logger=bridge.ws msg="connection opened" conn=3``.
Nothing here knows tokens or passwords: callers never pass them. Every value
is escaped: text from the network cannot forge a line or colour a terminal.
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["LogfmtFormatter", "configure", "tag_records"]

# Attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class LogfmtFormatter(logging.Formatter):
    """Formats records as logfmt, with the traceback (if any) on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        line = " ".join(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)
        if record.exc_info:
            # Indented: an exception's message may hold a newline, and no line of
            # it may pass for a record of its own.
            trace = self.formatException(record.exc_info).split("\n")
            line += "".join("\n  " + _escape(part) for part in trace)
        return line


def _value(value: object) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    return '"' + _escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _escape(text: str) -> str:
    """``text`` with every character that is not printable written as its escape.

    Values may quote what a client sent (a refused token's header): a raw CR,
    line separator or terminal escape would forge a line or repaint the screen.
    """
    if text.isprintable():
        return text
    # repr() of one character is its escape: \r, \x1b, \u2028.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def configure(level: int = logging.INFO) -> None:
    """Send the bridge's logs to standard error, one logfmt line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aio-pika and aiormq narrate every frame at INFO, and log a lost or refused
    # connection with its traceback: bridge.amqp says each, with the node, once.
    for noisy in ("aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


def tag_records(**fields: str) -> None:
    """Add ``fields`` to every record from now on: a worker's lines name its instance."""

    def tag(record: logging.LogRecord) -> bool:
        record.__dict__.update(fields)
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)
