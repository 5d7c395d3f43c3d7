"""The local spool: every run is written here first, then uploaded.

One folder per run, ``<runs_dir>/spool/<local id>/``:

``meta.json``   where the run is bound (tracking URI, experiment), who wrote it, when.
``ops.jsonl``   the run's operations in order, one JSON object a line (start, metrics, params,
                tags, artifact, model, end). Only whole lines count: a crash mid-write loses
                at most the line being written.
``files/``      copies of logged artifacts, taken when logged (the originals may change).
``state.json``  per tracking URI: the MLflow run id and the byte offset in ``ops.jsonl`` up to
                which everything is uploaded. Written atomically after each upload.
``lock``        held (flock) by the process writing the run, so ``autotune sync`` leaves a live
                run to its owner; the kernel drops it when that process dies.

A folder is removed once its run has ended and is wholly uploaded.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.fsutil import write_text_atomic

META = "meta.json"
OPS = "ops.jsonl"
STATE = "state.json"
FILES = "files"
LOCK = "lock"
LOCAL_PREFIX = "local-"
UPLOADED_INDEX = "uploaded.jsonl"  # local id → run id of spools already uploaded and removed


def now_ms() -> int:
    """Wall-clock milliseconds, MLflow's timestamp unit."""
    return int(time.time() * 1000)


def new_local_id() -> str:
    """A fresh local run id, recognisable as one (``local-`` and 16 hex digits)."""
    return LOCAL_PREFIX + uuid.uuid4().hex[:16]


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file, fsync and rename."""
    write_text_atomic(path, json.dumps(obj))


class Spool:
    """One run's spool folder. Appends are thread-safe; use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._ops: Any = None
        self._n_files = 0

    # -- making and opening ----------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, tracking_uri: str, experiment: str) -> Spool:
        """A new spool under ``root`` for a run bound to ``tracking_uri`` / ``experiment``."""
        local_id = new_local_id()
        path = root / local_id
        try:
            path.mkdir(parents=True)
        except OSError as e:
            raise UserError(f"cannot create the tracking spool {path}: {e.strerror}") from e
        spool = cls(path)
        if not spool.try_lock():
            raise UserError(f"spool {path} is locked by another process")
        meta = {
            "local_id": local_id,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "created_ms": now_ms(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        write_json_atomic(path / META, meta)
        spool._ops = (path / OPS).open("a", encoding="utf-8")
        return spool

    @classmethod
    def open(cls, path: Path) -> Spool:
        """An existing spool (for upload); raises UserError when it is not one."""
        if not (path / META).is_file():
            raise UserError(f"{path} is not a tracking spool (no {META})")
        spool = cls(path)
        spool._n_files = len(list((path / FILES).iterdir())) if (path / FILES).is_dir() else 0
        return spool

    def try_lock(self) -> bool:
        """Take the spool's lock without waiting; False when another process holds it."""
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        """Release the lock (closing the descriptor releases the flock)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Flush and close the operations file, then release the lock."""
        with self._lock:
            if self._ops is not None:
                self._ops.flush()
                os.fsync(self._ops.fileno())
                self._ops.close()
                self._ops = None
        self.unlock()

    # -- facts -------------------------------------------------------------------------------

    @property
    def local_id(self) -> str:
        return self.path.name

    def meta(self) -> dict[str, Any]:
        """The spool's ``meta.json``."""
        meta: dict[str, Any] = json.loads((self.path / META).read_text())
        return meta

    # -- writing -----------------------------------------------------------------------------

    def append(self, op: dict[str, Any]) -> None:
        """Append one operation; flushed to the OS at once, so a crash of this process keeps it."""
        line = json.dumps(op, separators=(",", ":"), allow_nan=True) + "\n"
        with self._lock:
            if self._ops is None:
                raise RuntimeError("spool is closed")
            self._ops.write(line)
            self._ops.flush()

    def stash(self, src: Path) -> str:
        """Copy a file or folder into ``files/`` now; returns its path relative to the spool."""
        with self._lock:
            self._n_files += 1
            rel = Path(FILES) / str(self._n_files) / src.name
        dest = self.path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                shutil.copy2(src, dest)
        except OSError as e:
            raise UserError(f"cannot log artifact {src}: {e.strerror or e}") from e
        return str(rel)

    def seal(self, status: str) -> None:
        """End the run of a writer that died without ending it (hold the lock first).

        A line cut short by the crash is dropped first, so the end stands on a line of its own.
        """
        ops = self.path / OPS
        with ops.open("r+b") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        with ops.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"op": "end", "t": now_ms(), "status": status}) + "\n")

    # -- reading -----------------------------------------------------------------------------

    def ops_from(self, offset: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """Whole operations after byte ``offset``, each with the offset just past it."""
        try:
            f = (self.path / OPS).open("rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(offset)
            pos = offset
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # a line still being written, or cut short by a crash
                pos += len(raw)
                yield pos, json.loads(raw)

    def state(self, uri: str) -> dict[str, Any]:
        """Upload progress towards ``uri``: ``run_id``, ``experiment_id``, ``offset``."""
        try:
            states: dict[str, Any] = json.loads((self.path / STATE).read_text())
        except FileNotFoundError:
            return {}
        got: dict[str, Any] = states.get(uri, {})
        return got

    def save_state(self, uri: str, state: dict[str, Any]) -> None:
        """Record upload progress towards ``uri`` (atomically)."""
        try:
            states = json.loads((self.path / STATE).read_text())
        except FileNotFoundError:
            states = {}
        states[uri] = state
        write_json_atomic(self.path / STATE, states)

    def remove(self, run_id: str) -> None:
        """Delete the folder of a wholly uploaded run, noting its run id in the index first."""
        index = self.path.parent / UPLOADED_INDEX
        entry = {"local_id": self.local_id, "run_id": run_id, "uri": self.meta()["tracking_uri"]}
        # O_APPEND writes of one short line do not interleave between processes.
        with index.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        shutil.rmtree(self.path, ignore_errors=True)


def uploaded_run_id(root: Path, local_id: str) -> str | None:
    """The MLflow run id a removed spool was uploaded as, from the index; None if unknown."""
    index = root / UPLOADED_INDEX
    if not index.is_file():
        return None
    found = None
    for line in index.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("local_id") == local_id:
            found = entry.get("run_id")
    return found


def spools(root: Path) -> list[Path]:
    """Spool folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and (p / META).is_file()]
    return sorted(found, key=lambda p: (p / META).stat().st_mtime)
