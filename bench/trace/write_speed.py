"""How fast traces are written and queried, against plain pyarrow / DuckDB in the same run.

Figures (each a median over interleaved repetitions, with the range):

* write: rows per second through :class:`~autotune.trace.TraceWriter` as the recorder uses it
  (Sample → row with features, a flush with fsync every 8 rows = 2 s at 250 ms, Parquet at close),
  against ``pyarrow.parquet.write_table`` of the same finished table;
* size: bytes per hour of recording at 250 ms (14,400 rows), of our Parquet and of the partial
  stream, against the plain pyarrow write's file;
* query: one aggregate over many traces with ``autotune.trace.query.run`` (checks every file is
  a trace, builds the ``trace`` view) against DuckDB's ``read_parquet`` of the same files.

The rows are synthetic (autotune.trace.synthetic): random counters compress worse than real
telemetry, so the sizes are an upper bound. Run: ``.venv/bin/python bench/trace/write_speed.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from autotune.trace import SCHEMA, TraceWriter, sample_to_row
from autotune.trace import meta as trace_meta
from autotune.trace.query import run as run_query
from autotune.trace.synthetic import samples

ROWS_PER_HOUR = 14_400  # at 250 ms
ROWS_PER_FLUSH = 8  # DEFAULT_FLUSH_S (2 s) at 250 ms
QUERY = (
    "SELECT file, count(*) AS n, avg(f_trainer_cpu) AS cpu, "
    "sum(blk_read_bytes) / sum(interval_s) / 1e6 AS mbps FROM trace GROUP BY file"
)


def _meta() -> dict[str, object]:
    return trace_meta.build(
        target="bench", command=["bench"], interval_s=0.25, explore=False, source="bpf"
    )


def _append_all(path: Path, rows: list) -> TraceWriter:  # type: ignore[type-arg]
    """A writer with ``rows`` appended and flushed every ROWS_PER_FLUSH rows, as recording does."""
    w = TraceWriter(path, flush_s=float("inf"))
    w.begin(_meta())
    for i, s in enumerate(rows, 1):
        w.append(s)
        if i % ROWS_PER_FLUSH == 0:
            w.flush()
    w.flush()
    return w


CPU_SECONDS: list[float] = []  # CPU time of each write_ours call (fsync waits excluded)


def write_ours(path: Path, rows: list) -> float:  # type: ignore[type-arg]
    """Seconds to record ``rows`` Samples as the recorder does."""
    start, cpu = time.perf_counter(), time.process_time()
    _append_all(path, rows).close()
    CPU_SECONDS.append(time.process_time() - cpu)
    return time.perf_counter() - start


def write_plain(path: Path, table: pa.Table) -> float:
    """Seconds for pyarrow to write the finished table as Parquet (its defaults)."""
    start = time.perf_counter()
    pq.write_table(table, path)
    return time.perf_counter() - start


def partial_size(folder: Path, rows: list) -> int:  # type: ignore[type-arg]
    """Bytes of the partial stream after ``rows`` (what a recording cut short leaves)."""
    w = _append_all(folder / "partial.parquet", rows)
    size = w.partial.stat().st_size
    w.discard()
    return size


def query_ours(files: list[Path]) -> float:
    start = time.perf_counter()
    run_query(QUERY, files)
    return time.perf_counter() - start


def query_plain(files: list[Path]) -> float:
    start = time.perf_counter()
    con = duckdb.connect()
    listed = ", ".join("'" + str(f) + "'" for f in files)
    con.sql(
        QUERY.replace("FROM trace", f"FROM read_parquet([{listed}], filename = true)")
        .replace("SELECT file", "SELECT filename")
        .replace("GROUP BY file", "GROUP BY filename")
    ).fetchall()
    con.close()
    return time.perf_counter() - start


def _interleaved(
    reps: int, ours: Callable[[int], float], base: Callable[[int], float]
) -> tuple[list[float], list[float]]:
    a, b = [], []
    for i in range(reps):
        # Alternate which goes first, so a warm cache or a neighbour's burst favours neither.
        if i % 2 == 0:
            a.append(ours(i))
            b.append(base(i))
        else:
            b.append(base(i))
            a.append(ours(i))
    return a, b


def _fmt(xs: list[float], scale: float = 1.0, spec: str = ".3f") -> str:
    return (
        f"median {statistics.median(xs) * scale:{spec}} "
        f"(range {min(xs) * scale:{spec}}–{max(xs) * scale:{spec}})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=ROWS_PER_HOUR, help="rows per written trace")
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    ap.add_argument("--traces", type=int, default=50, help="traces in the query benchmark")
    ap.add_argument("--trace-rows", type=int, default=1200, help="rows of each queried trace")
    args = ap.parse_args()
    print(f"load: {Path('/proc/loadavg').read_text().strip()}  (cpus {os.cpu_count()})")
    rows = list(samples(args.rows, seed=1))
    table = pa.Table.from_pylist([sample_to_row(s) for s in rows], schema=SCHEMA)
    with tempfile.TemporaryDirectory(
        prefix="autotune-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")
    ) as tmp:
        folder = Path(tmp)

        def ours(i: int) -> float:
            path = folder / f"ours{i}.parquet"
            secs = write_ours(path, rows)
            return secs

        def plain(i: int) -> float:
            return write_plain(folder / f"plain{i}.parquet", table)

        t_ours, t_plain = _interleaved(args.reps, ours, plain)
        ratio = [a / b for a, b in zip(t_ours, t_plain, strict=True)]
        n = args.rows
        print(
            f"\nwrite {n} rows ({n / ROWS_PER_HOUR:.2f} h at 250 ms), {args.reps} reps interleaved"
        )
        print(
            f"  ours (Sample→row+features, fsync every {ROWS_PER_FLUSH} rows, Parquet at close): "
            f"{_fmt([n / t for t in t_ours], spec='.0f')} rows/s"
        )
        plain_rate = _fmt([n / t for t in t_plain], spec=".0f")
        print(f"  plain pq.write_table of the same table: {plain_rate} rows/s")
        print(f"  time ratio ours/plain: {_fmt(ratio, spec='.1f')}")
        print(
            f"  ours per row: {_fmt([t / n for t in t_ours], 1e6, '.0f')} µs "
            "(at 250 ms a recorder writes 4 rows/s)"
        )
        cpu_row = statistics.median(CPU_SECONDS) / n
        print(
            f"  ours CPU per row: {cpu_row * 1e6:.0f} µs → {cpu_row * 4 * 100:.2f}% of one core "
            "at 4 rows/s"
        )

        ours_size = (folder / "ours0.parquet").stat().st_size
        plain_size = (folder / "plain0.parquet").stat().st_size
        part = partial_size(folder, rows)
        per_hour = ROWS_PER_HOUR / n
        print("\nsize per hour at 250 ms")
        print(f"  ours Parquet (zstd): {ours_size * per_hour / 1e6:.2f} MB")
        mb = part * per_hour / 1e6
        print(f"  ours partial stream (uncompressed, batches of {ROWS_PER_FLUSH}): {mb:.2f} MB")
        print(f"  plain pq.write_table (snappy): {plain_size * per_hour / 1e6:.2f} MB")
        print(f"  ratio ours/plain: {ours_size / plain_size:.2f}")
        print(f"  ratio partial/plain: {part / plain_size:.2f}")

        qdir = folder / "many"
        qdir.mkdir()
        files = []
        for k in range(args.traces):
            w = TraceWriter(qdir / f"t{k:03d}.parquet", flush_s=float("inf"))
            w.begin(_meta())
            for s in samples(args.trace_rows, seed=100 + k):
                w.append(s)
            files.append(w.close())
        q_ours, q_plain = _interleaved(
            args.reps, lambda i: query_ours(files), lambda i: query_plain(files)
        )
        qr = [a / b for a, b in zip(q_ours, q_plain, strict=True)]
        print(f"\nquery over {args.traces} traces × {args.trace_rows} rows: {QUERY}")
        print(f"  ours (autotune.trace.query.run): {_fmt(q_ours, 1e3, '.0f')} ms")
        print(f"  plain DuckDB read_parquet: {_fmt(q_plain, 1e3, '.0f')} ms")
        print(f"  ratio ours/plain: {_fmt(qr, spec='.2f')}")
    print(f"\nload after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
