"""The feeders' shared loop: say ``ready``, send each stdin line, say ``done N``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

#: Longest event line accepted on stdin.
MAX_LINE = 1 << 20


async def feed(send: Callable[[bytes], Awaitable[None]]) -> int:
    """Pass every non-blank stdin line to ``send``, in order; returns how many."""
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sent = 0
    while line := await reader.readline():
        if line.strip():
            await send(line.strip())
            sent += 1
    print(f"done {sent}", flush=True)
    return sent
