"""Trace files: the partial while recording, Parquet once closed, and damaged files."""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autotune.errors import UserError
from autotune.features import SCHEMA_VERSION
from autotune.knobs import KNOB_TABLE_VERSION
from autotune.trace import (
    TRACE_FORMAT_VERSION,
    TraceWriter,
    TruncatedTrace,
    load_trace,
    read_meta,
    read_samples,
)
from autotune.trace import meta as trace_meta
from autotune.trace.synthetic import samples


def _meta() -> dict[str, object]:
    return trace_meta.build(
        target="pid 1 (test)", command=["test"], interval_s=0.25, explore=False, source="proc"
    )


def _write(path: Path, n: int, flush_s: float = 0.0) -> TraceWriter:
    w = TraceWriter(path, flush_s=flush_s)
    w.begin(_meta())
    for s in samples(n):
        w.append(s)
    return w


def test_closed_trace_is_parquet_with_metadata(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _write(path, 10).close({"exit_status": 0})
    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]
    assert pq.ParquetFile(path).metadata.num_rows == 10
    table, meta = load_trace(path)
    assert table.num_rows == 10
    assert meta["complete"] is True and meta["rows"] == 10 and meta["exit_status"] == 0
    assert meta["format_version"] == TRACE_FORMAT_VERSION
    assert meta["features_schema_version"] == SCHEMA_VERSION
    assert meta["knob_table_version"] == KNOB_TABLE_VERSION
    for key in ("host", "kernel", "cpus", "block_devices", "target", "command", "start_time"):
        assert meta[key], key
    assert meta["interval_s"] == 0.25 and meta["explore"] is False
    assert len(read_samples(path)) == 10


def test_while_recording_only_the_partial_exists_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    w = _write(path, 5)  # flush_s=0: every row is flushed and synced
    assert not path.exists()
    assert w.partial.exists()
    with pytest.warns(TruncatedTrace, match="unfinished recording"):
        table, meta = load_trace(w.partial)
    assert table.num_rows == 5 and meta["complete"] is False
    w.close()
    assert path.exists() and not w.partial.exists()


def test_rows_are_buffered_until_a_flush(tmp_path: Path) -> None:
    w = _write(tmp_path / "t.parquet", 3, flush_s=3600.0)
    with pytest.warns(TruncatedTrace):
        assert load_trace(w.partial)[0].num_rows == 0
    w.flush()
    with pytest.warns(TruncatedTrace):
        assert load_trace(w.partial)[0].num_rows == 3
    w.close()


def test_a_partial_cut_mid_batch_loads_its_complete_rows(tmp_path: Path) -> None:
    w = _write(tmp_path / "t.parquet", 6)
    full = w.partial.read_bytes()
    w.close()
    cut = tmp_path / "cut.parquet.partial"
    cut.write_bytes(full[: len(full) - 40])  # tear the last batch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table, _ = load_trace(cut)
    assert table.num_rows == 5
    assert len(caught) == 1 and issubclass(caught[0].category, TruncatedTrace)
    assert "\n" not in str(caught[0].message)


def test_a_partial_without_its_header_is_a_user_error(tmp_path: Path) -> None:
    w = _write(tmp_path / "t.parquet", 2)
    head = w.partial.read_bytes()[:20]
    w.close()
    bad = tmp_path / "bad.partial"
    bad.write_bytes(head)
    with pytest.raises(UserError, match="damaged trace stream"):
        load_trace(bad)


def test_truncated_parquet_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _write(path, 10).close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated Parquet") as e:
        load_trace(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"hello, world\n", "neither Parquet nor an Arrow stream"),
        (b"PAR1garbage", "truncated Parquet"),
    ],
)
def test_foreign_bytes_are_user_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_trace(path)


def test_foreign_parquet_is_not_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    with pytest.raises(UserError, match="not an autotune trace"):
        load_trace(path)
    with pytest.raises(UserError, match="not an autotune trace"):
        read_meta(path)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.parquet"
    meta = {**_meta(), "format_version": TRACE_FORMAT_VERSION + 1}
    pq.write_table(
        pa.table({"t": [1.0]}).replace_schema_metadata(
            trace_meta.attach(pa.schema([("t", pa.float64())]), meta).metadata
        ),
        path,
    )
    with pytest.raises(UserError, match="upgrade autotune"):
        load_trace(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such trace"):
        load_trace(tmp_path / "nope.parquet")
    with pytest.raises(UserError, match="is a folder"):
        load_trace(tmp_path)


def test_writer_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _write(path, 1).close()
    with pytest.raises(UserError, match="already exists"):
        TraceWriter(path)
    partial = tmp_path / "u.parquet.partial"
    partial.write_bytes(b"")
    with pytest.raises(UserError, match="cut short"):
        TraceWriter(tmp_path / "u.parquet")


def test_unwritable_output_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write"):
        TraceWriter(blocker / "t.parquet")
    assert os.listdir(tmp_path) == ["file"]


def test_writer_that_never_began_leaves_nothing(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "t.parquet"):
        pass
    assert os.listdir(tmp_path) == []


def test_writer_closes_on_an_exception_with_what_it_had(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError), TraceWriter(path, flush_s=3600) as w:
        w.begin(_meta())
        for s in samples(4):
            w.append(s)
        raise RuntimeError("boom")
    assert load_trace(path)[0].num_rows == 4
    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]


def _rows_on_disk(partial: Path) -> int:
    with pytest.warns(TruncatedTrace):
        return load_trace(partial)[0].num_rows


def test_a_background_writer_flushes_from_its_own_thread(tmp_path: Path) -> None:
    w = TraceWriter(tmp_path / "t.parquet", flush_s=0.0, background=True)
    w.begin(_meta())
    appender = threading.get_ident()
    flushed_by: list[int] = []
    real_flush = w.flush

    def flush() -> None:
        flushed_by.append(threading.get_ident())
        real_flush()

    w.flush = flush  # type: ignore[method-assign]
    for s in samples(3):
        w.append(s)
    deadline = time.monotonic() + 30
    while _rows_on_disk(w.partial) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _rows_on_disk(w.partial) == 3
    assert flushed_by and appender not in flushed_by
    w.close()
    assert load_trace(tmp_path / "t.parquet")[0].num_rows == 3
    assert not any(t.name == "autotune-trace-flush" for t in threading.enumerate())


def test_a_background_flush_that_fails_is_raised_by_the_next_append(tmp_path: Path) -> None:
    w = TraceWriter(tmp_path / "t.parquet", flush_s=0.0, background=True)
    rows = iter(samples(3))
    w.append(next(rows))  # before begin(): the flusher's flush fails
    deadline = time.monotonic() + 30
    while w._failed is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="begin"):
        w.append(next(rows))
    with pytest.raises(RuntimeError, match="begin"):
        w.close()
    w.discard()
    assert os.listdir(tmp_path) == []
