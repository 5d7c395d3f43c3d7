"""Traces: one row per control interval, written crash-safe, read back as tables or Samples."""

from autotune.trace.columns import SCHEMA, missing_columns, sample_to_row, table_to_samples
from autotune.trace.meta import TRACE_FORMAT_VERSION
from autotune.trace.reader import TruncatedTrace, load_trace, read_meta, read_samples
from autotune.trace.writer import TraceWriter, partial_path

__all__ = [
    "SCHEMA",
    "TRACE_FORMAT_VERSION",
    "TraceWriter",
    "TruncatedTrace",
    "load_trace",
    "missing_columns",
    "partial_path",
    "read_meta",
    "read_samples",
    "sample_to_row",
    "table_to_samples",
]
