"""Upload spooled runs (what `autotune sync` does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autotune.tracking import store
from autotune.tracking.schema import SPOOL_DIR
from autotune.tracking.spool import Spool, spools
from autotune.tracking.upload import Unreachable, fully_uploaded, upload


@dataclass
class SyncReport:
    """What a sync did, run by run (local ids)."""

    uploaded: dict[str, str] = field(default_factory=dict)  # local id → MLflow run id
    busy: list[str] = field(default_factory=list)  # still being written by a live process
    failed: dict[str, str] = field(default_factory=dict)  # local id → why
    rejected: dict[str, list[str]] = field(default_factory=dict)  # refused by the store


def sync_one(path: Path, tracking_uri: str | None = None) -> tuple[str | None, list[str]]:
    """Upload one spool folder to ``tracking_uri`` (default: where it was bound).

    A run whose writer died before ending it is ended as KILLED. Returns the MLflow run id and
    what the store refused.

    Raises:
        Unreachable: the store did not answer; what went up stays recorded.
        BlockingIOError: a live process still writes this spool.
    """
    spool = Spool.open(path)
    if not spool.try_lock():
        raise BlockingIOError(f"{path} is in use")
    try:
        uri = tracking_uri or spool.meta()["tracking_uri"]
        ops = [op["op"] for _, op in spool.ops_from(0)]
        if "end" not in ops:
            # Its writer is gone (we hold the lock): close the run honestly.
            spool.seal("KILLED")
        result = upload(spool, store.client(uri), uri)
        done = fully_uploaded(spool, uri)
    finally:
        spool.unlock()
    if done and result.run_id:
        spool.remove(result.run_id)
    return result.run_id, result.rejected


def sync_all(runs_dir: Path, tracking_uri: str | None = None) -> SyncReport:
    """Upload every spooled run under ``runs_dir``, oldest first (parents before children)."""
    report = SyncReport()
    for path in spools(runs_dir / SPOOL_DIR):
        local_id = path.name
        try:
            run_id, rejected = sync_one(path, tracking_uri)
        except BlockingIOError:
            report.busy.append(local_id)
            continue
        except Unreachable as e:
            report.failed[local_id] = str(e).splitlines()[0]
            continue
        if run_id:
            report.uploaded[local_id] = run_id
        if rejected:
            report.rejected[local_id] = rejected
    return report
