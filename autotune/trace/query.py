"""SQL over traces: DuckDB sees one or many recordings as one table ``trace``.

Finished recordings (Parquet) are scanned by DuckDB itself, so a query reads only the columns it
names; partial ones (Arrow streams of a recording cut short or still running) are loaded through
:mod:`autotune.trace.reader` and joined by column name. Every row has a ``file`` column naming
the trace it came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from autotune.errors import UserError
from autotune.trace.reader import load_trace, read_header
from autotune.trace.writer import PARTIAL_SUFFIX

if TYPE_CHECKING:
    import duckdb

WORKLOADS = "workloads"
TABLE = "trace"
# Errors that mean the statement itself is wrong, as opposed to a file that cannot be read.
_SQL_ERRORS = ("ParserException", "BinderException", "CatalogException", "SyntaxException")


def workloads_dir(runs_dir: Path) -> Path:
    """Where recordings go by default: ``<runs_dir>/workloads``."""
    return runs_dir / WORKLOADS


def find_traces(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders to the traces in them (``*.parquet``, and partials with no finished file).

    Raises:
        UserError: a path that does not exist, or no trace at all.
    """
    out: list[Path] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            finished = sorted(p.glob("*.parquet"))
            partial = [
                q
                for q in sorted(p.glob(f"*{PARTIAL_SUFFIX}"))
                if not q.with_name(q.name.removesuffix(PARTIAL_SUFFIX)).exists()
            ]
            out.extend(finished + partial)
        elif p.exists():
            out.append(p)
        else:
            raise UserError(f"{p}: no such trace file or folder")
    if not out:
        where = ", ".join(str(p) for p in paths)
        raise UserError(f"no traces found in {where}; record one with `autotune record`")
    return out


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(traces: Sequence[Path]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the view ``trace`` over ``traces`` (checked to be traces)."""
    import duckdb

    parquet: list[Path] = []
    schemas: list[pa.Schema] = []
    streams: list[pa.Table] = []
    for path in traces:
        kind, schema, _ = read_header(path)
        if kind == "parquet":
            parquet.append(path)
            schemas.append(schema)
        else:
            table, _ = load_trace(path)
            column = pa.array([str(path)] * table.num_rows, pa.string())
            streams.append(table.add_column(0, "file", column))
    con = duckdb.connect()
    parts: list[str] = []
    if parquet:
        files = ", ".join(_sql_string(str(p)) for p in parquet)
        # Matching columns by name reads every file's footer again; only needed when traces of
        # different format versions are mixed.
        same = all(s.equals(schemas[0], check_metadata=False) for s in schemas)
        parts.append(
            f"SELECT filename AS file, * EXCLUDE (filename) FROM read_parquet([{files}], "
            f"filename = true, union_by_name = {'false' if same else 'true'})"
        )
    if streams:
        con.register("_autotune_partials", pa.concat_tables(streams, promote_options="default"))
        parts.append("SELECT * FROM _autotune_partials")
    con.execute(f"CREATE VIEW {TABLE} AS " + " UNION ALL BY NAME ".join(parts))
    return con


def run(sql: str, traces: Sequence[Path]) -> pa.Table:
    """Run ``sql`` over ``traces`` (table ``trace``) and return the result.

    Raises:
        UserError: a trace that cannot be read, or a statement DuckDB rejects (first line of
            its message).
    """
    import duckdb

    con = connect(traces)
    try:
        rel = con.sql(sql)
        if rel is None:  # a statement without rows (SET, CREATE …)
            return pa.table({})
        # DuckDB 2 renamed the relation's Arrow export; 1.x has only .arrow().
        export = getattr(rel, "to_arrow_table", None) or rel.arrow
        table: pa.Table = export()
        return table
    except duckdb.Error as e:
        line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if type(e).__name__ in _SQL_ERRORS:
            raise UserError(f"bad SQL: {line}") from None
        raise UserError(f"query failed: {line}") from None
    finally:
        con.close()
