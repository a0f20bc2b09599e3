"""The feeder of the NestJS baseline: a POST per event, as the seed's Django code does.

Each event is ``POST /api/dashboard/emit-event`` with the seed's
``{"type", "data", "timestamp"}``, the benchmark's fields in ``data``; the gateway
answers 202 after ``server.emit`` wrote to every client. POSTs go out on schedule
without waiting for the previous answer, over a few keep-alive connections (one
request in flight on each, last used first, so that at low rates the same one stays
warm); a POST waits for a free connection only when all are busy. ``sentAt`` is
stamped right before the request is written to its socket (asyncio writes at once
when nothing is buffered). Runs come on standard input (``feed.py``). It prints
``ready`` once its connections are open.

    python bench/baselines/http_feeder.py --port 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from feed import feed, fields, stamp

__all__ = ["main", "run"]

HOST = "127.0.0.1"
#: Keep-alive connections the POSTs go out on.
CONNECTIONS = 4
CONNECT_TIMEOUT = 15.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Poster:
    def __init__(self, port: int) -> None:
        self.port = port
        self.pool: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()

    async def connection(self) -> Connection:
        return await asyncio.wait_for(asyncio.open_connection(HOST, self.port), CONNECT_TIMEOUT)

    def prepare(self, run: str, seq: int, pad: int) -> bytes:
        stamp_ = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = json.dumps({"type": "dashboard", "data": fields(run, seq, pad), "timestamp": stamp_})
        return (
            f"POST /api/dashboard/emit-event HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {{length}}\r\n\r\n{body}"
        ).encode()

    @staticmethod
    def _stamped(template: bytes) -> bytes:
        head, _, body = stamp(template).partition(b"\r\n\r\n")
        return head.replace(b"{length}", str(len(body)).encode()) + b"\r\n\r\n" + body

    async def post(self, template: bytes) -> None:
        reader, writer = await self.pool.get()
        try:
            writer.write(self._stamped(template))
            status = await reader.readline()
            if not status:
                # Node closes a keep-alive connection idle for 5 s: at low rates, send
                # again on a new one, as a client making a connection per POST would.
                writer.close()
                reader, writer = await self.connection()
                writer.write(self._stamped(template))
                status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if status.split()[1:2] != [b"202"]:
                raise RuntimeError(f"POST answered {status!r}")
        except BaseException:
            writer.close()
            reader, writer = await self.connection()
            raise
        finally:
            self.pool.put_nowait((reader, writer))


async def run(port: int) -> int:
    poster = Poster(port)
    for _ in range(CONNECTIONS):
        poster.pool.put_nowait(await poster.connection())
    try:
        return await feed(poster.prepare, poster.post)
    finally:
        while not poster.pool.empty():
            poster.pool.get_nowait()[1].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="the NestJS gateway's")
    asyncio.run(run(parser.parse_args().port))


if __name__ == "__main__":
    main()
