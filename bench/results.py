"""What every bench result file starts with: the commit, the machine and the date."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def provenance(note: str | None = None) -> dict[str, Any]:
    """``commit``, ``machine`` (node, kernel, CPUs, and ``note`` when given) and ``date``.

    ``BENCH_COMMIT`` in the environment names the commit: a copy of the tree (a lent GPU
    machine's) may carry a stale git HEAD or none, and the caller knows what it sent."""
    commit = (
        os.environ.get("BENCH_COMMIT")
        or subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    machine: dict[str, Any] = {
        "node": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
    }
    if note is not None:
        machine["note"] = note
    return {
        "commit": commit,
        "machine": machine,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_json(path: str | os.PathLike[str], doc: dict[str, Any]) -> None:
    """Write ``doc`` as indented JSON, whole or not at all (a bench stopped while it writes
    leaves the file it had), making the folder when missing."""
    from autotune.fsutil import write_text_atomic

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(doc, indent=1) + "\n")


def write_result(path: str | os.PathLike[str], script: str, note: str | None, **body: Any) -> None:
    """Write a bench's result file: which script (``__file__``) with which arguments, the
    :func:`provenance` (``note`` in it), then ``body`` (summary, raw repeats, ...)."""
    bench = Path(script).resolve().relative_to(Path(__file__).resolve().parents[1])
    doc = {"bench": str(bench), "argv": sys.argv[1:], **provenance(note), **body}
    write_json(path, doc)


def read_merged(
    path: Path, key: str, what: str, unreadable: str = "", missing_ok: bool = True
) -> dict[str, Any]:
    """A result file that runs merge into, one entry per name under ``key`` (``{key: {}}`` when
    missing and ``missing_ok``); a damaged one is a UserError, raised before any run: ``not
    WHAT`` (or ``UNREADABLE`` when it cannot be read or parsed)."""
    from autotune.errors import UserError

    if missing_ok and not path.exists():
        return {key: {}}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: {unreadable or 'not ' + what} ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise UserError(f"{path}: not {what} (no '{key}' object)")
    return doc
