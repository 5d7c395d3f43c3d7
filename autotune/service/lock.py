"""One service per slice: an exclusive ``flock`` on a lock file under the state directory.

The kernel drops the lock when the service's process ends, however it ends (``kill -9``
included), so a stale lock file never blocks the next service.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from autotune.errors import NotPermitted, UserError


@contextlib.contextmanager
def hold(path: Path, what: str) -> Iterator[None]:
    """Hold the lock at ``path`` for the block; a second holder gets one line (UserError)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError as e:
        raise NotPermitted(f"cannot create the service lock {path}: permission denied") from e
    except OSError as e:
        raise UserError(f"cannot create the service lock {path}: {e.strerror or e}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"another autotune service (PID {other}) already tunes {what}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the lock; the file stays (removing it would race)
