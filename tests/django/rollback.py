"""A transaction that fails after doing some work, for the tests of what a rollback sends."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

__all__ = ["Boom", "fail_in_a_transaction"]


class Boom(Exception):
    pass


def fail_in_a_transaction(*work: Callable[[], object]) -> None:
    """Do ``work`` in a transaction (a savepoint when one is open), then raise :class:`Boom`."""
    with transaction.atomic():
        for step in work:
            step()
        raise Boom
