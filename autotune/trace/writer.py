"""Writing a trace so that a crash loses at most the last few seconds.

While recording, rows go to ``FILE.partial`` as an Arrow IPC stream: the schema (with the
metadata) first, then one record batch per flush, each followed by an fsync. A kill -9 leaves a
stream whose complete batches still load (:mod:`autotune.trace.reader`). On a clean close the
stream is converted to Parquet under a temporary name in the same folder, fsynced and renamed to
``FILE``; only then is the partial removed. Nothing is ever half-written under ``FILE``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from autotune.errors import UserError
from autotune.fsutil import atomic_file, fsync_dir
from autotune.system import priority
from autotune.telemetry.sample import Sample
from autotune.trace import meta as trace_meta
from autotune.trace.columns import SCHEMA, rows_to_batch, sample_to_row
from autotune.trace.reader import load_trace

PARTIAL_SUFFIX = ".partial"
# A few seconds: what a crash may lose, against one small fsync per flush.
DEFAULT_FLUSH_S = 2.0
# Batches of a few rows compress poorly (×0.65 with zstd) at 20× the CPU: the partial is
# temporary, so it is written uncompressed (bench/trace/write_speed.py).
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)


def partial_path(path: Path) -> Path:
    """Where the recording of ``path`` lives until it is closed."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


class TraceWriter:
    """Append Samples to a trace; a context manager that finalizes the Parquet file on exit.

    Create it before the job starts: opening the partial is the check that the output path is
    writable. Call :meth:`begin` with the metadata once it is known, then :meth:`append` once
    per interval.

    Args:
        path: the final trace file (``.parquet``).
        flush_s: seconds between flushes (each one is a batch and an fsync).
        create_dirs: make the folder (and its parents) when missing; when False a missing
            folder is refused (``autotune record -o`` without ``--create-dirs``).
        background: flush from a thread of the writer's own, so that :meth:`append` never waits
            on the disk (a recording's loop: under load an fsync stalled it for up to a second,
            four rows late at 250 ms). A flush that fails there is raised by the next
            :meth:`append` or by :meth:`close`. Off: each due flush runs inside :meth:`append`.

    Raises:
        UserError: the output or its partial already exists, the folder is missing (without
            ``create_dirs``), not writable or not searchable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        flush_s: float = DEFAULT_FLUSH_S,
        *,
        create_dirs: bool = True,
        background: bool = False,
    ) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.flush_s = flush_s
        self.background = background
        self.rows = 0
        self._pending: list[dict[str, Any]] = []
        self._pending_lock = threading.Lock()  # the rows: appended here, taken by a flush
        self._io_lock = threading.Lock()  # the stream and the file: one flush at a time
        self._last_flush = time.monotonic()
        self._flusher: threading.Thread | None = None
        self._flush_due = threading.Event()
        self._flusher_stop = False
        self._failed: BaseException | None = None
        self._meta: dict[str, Any] = {}
        self._stream: pa.ipc.RecordBatchStreamWriter | None = None
        folder = self.path.parent
        try:
            if self.path.exists():
                raise UserError(f"{self.path} already exists; choose another -o or remove it")
            if self.partial.exists():
                raise UserError(
                    f"{self.partial} exists (a recording cut short?); move it away or choose"
                    " another -o"
                )
            if create_dirs:
                folder.mkdir(parents=True, exist_ok=True)
            elif not folder.is_dir():
                # A typo in an explicit path should not grow a directory tree (curl's rule).
                raise UserError(
                    f"cannot write {self.path}: no folder {folder}; create it first"
                    " (or pass --create-dirs)"
                )
            fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except PermissionError:
            raise UserError(f"cannot write {self.path}: permission denied") from None
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._file: BinaryIO = os.fdopen(fd, "wb")

    def begin(self, meta: Mapping[str, Any]) -> None:
        """Write the stream's header with the trace's metadata (durably: a crash keeps it)."""
        self._meta = dict(meta)
        schema = trace_meta.attach(SCHEMA, self._meta)
        self._stream = pa.ipc.new_stream(self._file, schema, options=_IPC_OPTIONS)
        # Arrow writes the schema with the first batch: an empty one puts it on disk now.
        self._stream.write_batch(rows_to_batch([]))
        self._sync()

    def append(self, sample: Sample) -> None:
        """Add one interval; flushes when :attr:`flush_s` has passed since the last flush."""
        self.append_row(sample_to_row(sample))

    def append_row(self, row: dict[str, Any]) -> None:
        """Add one row made by :func:`~autotune.trace.columns.sample_to_row`."""
        if self._failed is not None:
            raise self._failed
        with self._pending_lock:
            self._pending.append(row)
        self.rows += 1
        if time.monotonic() - self._last_flush < self.flush_s:
            return
        self._last_flush = time.monotonic()
        if not self.background:
            self.flush()
            return
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_when_due, name="autotune-trace-flush", daemon=True
            )
            self._flusher.start()
        self._flush_due.set()

    def flush(self) -> None:
        """Write the pending rows as one batch and fsync the partial."""
        with self._io_lock:
            self._last_flush = time.monotonic()
            if self._stream is None:
                if self._pending:  # the rows stay pending
                    raise RuntimeError("TraceWriter.begin() must be called before rows are written")
                return
            with self._pending_lock:
                rows, self._pending = self._pending, []
            if not rows:
                return
            self._stream.write_batch(rows_to_batch(rows))
            self._sync()

    def _flush_when_due(self) -> None:
        """The background flusher's thread: one flush each time :meth:`append_row` asks. It is
        started by the recording's loop, whose real-time priority it must not inherit."""
        priority.normal()
        while True:
            self._flush_due.wait()
            self._flush_due.clear()
            if self._flusher_stop:
                return
            try:
                self.flush()
            except BaseException as e:  # told to the recording by its next append
                self._failed = e
                return

    def _stop_flusher(self) -> None:
        """End the background flusher (its flush in progress completes first)."""
        if self._flusher is None:
            return
        self._flusher_stop = True
        self._flush_due.set()
        self._flusher.join()
        self._flusher = None

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Flush, convert the stream to Parquet at :attr:`path` atomically, remove the partial.

        Args:
            extra: metadata to add now (the job's exit status, say).

        Returns:
            The final trace's path.
        """
        self._stop_flusher()
        if self._failed is not None:
            raise self._failed
        if self._stream is None:
            self.begin(self._meta)
        self.flush()
        if self._stream is not None:
            self._stream.close()
        self._sync()
        self._file.close()
        table, meta = load_trace(self.partial)
        meta.update(extra or {})
        meta.update(complete=True, rows=table.num_rows, end_wall=time.time())
        table = table.replace_schema_metadata(trace_meta.attach(SCHEMA, meta).metadata)
        write_parquet_atomic(table, self.path)
        self.partial.unlink()
        fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the partial when the recording never started (nothing worth keeping)."""
        self._stop_flusher()
        with contextlib.suppress(OSError):
            self._file.close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file.closed:
            return
        if self._stream is None and self.rows == 0:
            self.discard()
        else:
            self.close()


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` as Parquet, whole or not at all."""
    with atomic_file(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")
