"""Reading traces back: Parquet (a finished recording) or the Arrow stream of a partial one.

Both kinds carry the same schema and metadata. A stream cut short (kill -9, a full disk) loads
its complete batches with one :class:`TruncatedTrace` warning. Anything that is not an autotune
trace, or is damaged beyond that, is a :class:`~autotune.errors.UserError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from autotune.errors import UserError
from autotune.telemetry.sample import Sample
from autotune.trace import meta as trace_meta
from autotune.trace.columns import table_to_samples

PARQUET_MAGIC = b"PAR1"
# Every Arrow IPC message since format 0.15 starts with this continuation marker.
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"
_EOS = ARROW_STREAM_MAGIC + b"\x00\x00\x00\x00"


class TruncatedTrace(UserWarning):
    """A trace ended mid-write; what was complete has been loaded."""


def _kind(path: Path) -> str:
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise UserError(f"{path}: no such trace file") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a trace file") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if head == PARQUET_MAGIC:
        return "parquet"
    if head == ARROW_STREAM_MAGIC:
        return "stream"
    if not head:
        raise UserError(f"{path} is empty, not an autotune trace")
    raise UserError(f"{path} is not an autotune trace (neither Parquet nor an Arrow stream)")


def _checked_meta(path: Path, schema: pa.Schema) -> dict[str, Any]:
    meta = trace_meta.extract(schema)
    if meta is None:
        raise UserError(f"{path} is not an autotune trace (no autotune metadata in it)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > trace_meta.TRACE_FORMAT_VERSION:
        raise UserError(
            f"{path} has trace format {version!r}; this autotune reads up to "
            f"{trace_meta.TRACE_FORMAT_VERSION} (upgrade autotune)"
        )
    return meta


def read_meta(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """The kind (``parquet`` or ``stream``) and metadata of a trace, reading only its header.

    Raises:
        UserError: missing, unreadable, corrupted or foreign file.
    """
    kind, _, meta = read_header(path)
    return kind, meta


def read_header(path: str | os.PathLike[str]) -> tuple[str, pa.Schema, dict[str, Any]]:
    """The kind, Arrow schema and metadata of a trace, reading only its header (or footer).

    Raises:
        UserError: missing, unreadable, corrupted or foreign file.
    """
    p = Path(path)
    kind = _kind(p)
    if kind == "parquet":
        try:
            schema = pq.read_schema(p)
        except (pa.ArrowException, OSError) as e:
            raise UserError(f"{p} is a damaged Parquet file: {_first_line(e)}") from None
    else:
        try:
            with pa.ipc.open_stream(pa.memory_map(str(p))) as reader:
                schema = reader.schema
        except (pa.ArrowException, OSError) as e:
            raise UserError(f"{p} is a damaged trace stream: {_first_line(e)}") from None
    return kind, schema, _checked_meta(p, schema)


def load_trace(path: str | os.PathLike[str]) -> tuple[pa.Table, dict[str, Any]]:
    """Load a trace (Parquet or partial stream) with its metadata.

    The metadata gains ``complete``: True only for a recording that was closed cleanly.

    Raises:
        UserError: missing, unreadable, corrupted or foreign file.
    """
    p = Path(path)
    kind = _kind(p)
    if kind == "parquet":
        table, meta = _load_parquet(p)
    else:
        table, meta = _load_stream(p)
    meta.setdefault("complete", False)
    return table, meta


def read_samples(path: str | os.PathLike[str]) -> list[Sample]:
    """A trace's rows as Samples, in recorded order (for the replay env)."""
    table, _ = load_trace(path)
    return table_to_samples(table)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _load_parquet(path: Path) -> tuple[pa.Table, dict[str, Any]]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        # Parquet's index of its rows is its footer, at the end: a file cut short has none.
        raise UserError(
            f"{path} is a damaged or truncated Parquet file (no readable footer, so no rows can "
            f"be recovered): {_first_line(e)}"
        ) from None
    meta = _checked_meta(path, pf.schema_arrow)
    try:
        table = pf.read()
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path} is a damaged Parquet file: {_first_line(e)}") from None
    return table, dict(meta)


def _ends_with_eos(path: Path) -> bool:
    """Whether the stream ends with the end-of-stream marker a clean close writes."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < len(_EOS):
            return False
        f.seek(-len(_EOS), os.SEEK_END)
        return f.read() == _EOS


def _load_stream(path: Path) -> tuple[pa.Table, dict[str, Any]]:
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowException, OSError) as e:
        raise UserError(
            f"{path} is a damaged trace stream (its header is incomplete): {_first_line(e)}"
        ) from None
    with reader:
        meta = _checked_meta(path, reader.schema)
        batches: list[pa.RecordBatch] = []
        truncated = False
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowException, OSError):
                truncated = True
                break
        schema = reader.schema
    table = pa.Table.from_batches(batches, schema=schema)
    if truncated or not _ends_with_eos(path):
        warnings.warn(
            TruncatedTrace(
                f"{path} is an unfinished recording (cut short, or still running); "
                f"loaded its {table.num_rows} complete rows"
            ),
            stacklevel=3,
        )
    return table, dict(meta)
