"""The bridge's open TCP connections, counted by address, each count with a bound.

A connection is counted as soon as TCP accepts it, before any HTTP: one
address cannot hold more than ``max_connections_per_ip`` of them, plain HTTP
and WebSocket together, and the bridge no more than ``max_connections``.
Behind a reverse proxy every browser comes from the proxy's address: there,
the proxy bounds them, and the per-address bound is switched off (0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Connections"]

T = TypeVar("T")


class Connections(Generic[T]):
    """Who is connected; :meth:`admit` says whether one more may be."""

    def __init__(self, *, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._open: set[T] = set()
        self._by_address: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._open))

    def admit(self, connection: T, address: str) -> str | None:
        """Count ``connection`` in, or say why it may not come in (it is not counted)."""
        if self.max_total and len(self._open) >= self.max_total:
            return "total"
        if self.max_per_address and self._by_address[address] >= self.max_per_address:
            return "per-ip"
        self._by_address[address] += 1
        self._open.add(connection)
        return None

    def release(self, connection: T, address: str) -> None:
        """``connection`` is gone."""
        if connection not in self._open:
            return
        self._open.discard(connection)
        self._by_address[address] -= 1
        if not self._by_address[address]:
            del self._by_address[address]
