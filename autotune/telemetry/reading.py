"""One reading of the node per pass: what every job's collector reads alike, read once.

The node service steps every job's loop in one pass (:mod:`autotune.service.ticker`). Inside
:func:`one_reading`, the readings that are the same for every job (the BPF programs' cumulative
counters and process table, ``/proc/vmstat``, ``/proc/loadavg``) go through :func:`memo` and are
read once; each job then takes its differences from the same reading instead of one each. Outside
a block, :func:`memo` reads every time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

_tick = threading.local()  # .memo: the readings of the current one_reading() block, or absent
T = TypeVar("T")


@contextlib.contextmanager
def one_reading() -> Iterator[None]:
    """Within the block, in this thread, readings through :func:`memo` are read once and
    shared. The values are shared: callers must not change them in place."""
    _tick.memo = {}
    try:
        yield
    finally:
        _tick.memo = None


def memo(key: Hashable, read: Callable[[], T]) -> T:
    """``read()``, once per :func:`one_reading` block for ``key`` (every call outside one)."""
    cache: dict[Hashable, Any] | None = getattr(_tick, "memo", None)
    if cache is None:
        return read()
    if key not in cache:
        cache[key] = read()
    return cache[key]
