"""The bridge's log lines: one per record, whatever a client put in the values."""

from __future__ import annotations

import logging
import sys

from bridge.logs import LogfmtFormatter

HOSTILE = 'crit "x"\r\nts=2026 level=error msg=forged\x1b[2J\u2028next\\'


def line(message: str, *args: object, **extra: object) -> str:
    record = logging.LogRecord("bridge.ws", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return LogfmtFormatter().format(record)


def test_untrusted_text_cannot_forge_a_line_or_reach_the_terminal() -> None:
    text = line("authentication refused: %s", HOSTILE, reason=HOSTILE)
    assert text.isprintable()  # one line: no CR, LF, ESC or U+2028 left raw
    for escape in ("\\r\\n", "\\x1b[2J", "\\u2028"):
        assert escape in text


def test_plain_values_stay_bare_and_others_are_quoted() -> None:
    text = line("connection opened", conn=3, roles=["a", "b"], reason="a b", empty="")
    assert text.endswith('msg="connection opened" conn=3 roles=a,b reason="a b" empty=""')


def test_a_traceback_keeps_its_lines_but_not_what_a_client_sent() -> None:
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        record = logging.LogRecord("bridge", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    text = LogfmtFormatter().format(record)
    first, *trace = text.split("\n")
    assert first.startswith("ts=")
    # Each line of the traceback is indented: none passes for a record, forged or not.
    assert all(part.startswith("  ") and part.isprintable() for part in trace)
    assert trace[0] == "  Traceback (most recent call last):"
