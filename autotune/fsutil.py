"""Files written whole or not at all: a temporary file beside the target, fsync, rename, fsync
the folder. A crash at any point leaves the old file or the new one, never half of either.

And the cheap read of the small /proc, /sys and cgroup files the tuner reads every interval.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def read_small(path: str | os.PathLike[str]) -> str | None:
    """A small kernel file's text, or None when it is gone or unreadable (a process or thread
    that exited between the listing and the read (ENOENT, ESRCH), or one not ours (EACCES)).

    Raw ``os.open``/``os.read``: a third of the cost of ``Path.read_text`` (no text wrapper, no
    encoding lookup), which matters at a few dozen files per control interval. Pass a string
    path where it is built per call: pathlib's joins cost more than the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb", perms: int = 0o644) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path``.

    Args:
        path: the file to write.
        mode: ``wb`` or ``w`` (text, UTF-8).
        perms: the file's permissions (``mkstemp`` alone would give 0600).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, perms)
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str, perms: int = 0o644) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    with atomic_file(path, "w", perms) as f:
        f.write(text)


def write_json_atomic(path: Path, obj: Any, perms: int = 0o644, **dumps: Any) -> None:
    """Write ``obj`` as JSON to ``path`` whole or not at all."""
    write_text_atomic(path, json.dumps(obj, **dumps), perms)
