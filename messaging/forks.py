"""Starting afresh in a forked child (a gunicorn worker): objects holding threads or sockets."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable

__all__ = ["reset_in_child"]


def reset_in_child(reset: Callable[[], None]) -> None:
    """Call the bound method ``reset`` in every child this process forks from now on.

    The method is held weakly: registering does not keep its object alive
    (``os.register_at_fork`` cannot be undone).
    """
    method = weakref.WeakMethod(reset)
    os.register_at_fork(after_in_child=lambda: (alive := method()) and alive())
