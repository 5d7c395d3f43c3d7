"""Upload spooled runs (what `autotune sync` does)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from autotune.tracking import store
from autotune.tracking.schema import SPOOL_DIR
from autotune.tracking.spool import Spool, spools
from autotune.tracking.upload import Unreachable, fully_uploaded, upload

# The most `autotune sync` waits for an upload process finishing a run that has ended.
FINISHING_WAIT_S = 60.0


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

    Returns (None, []) when the run's upload process finished it while this waited.

    Raises:
        Unreachable: the store did not answer; what went up stays recorded.
        BlockingIOError: a live process still writes this spool (or an upload process held
            an ended run longer than :data:`FINISHING_WAIT_S`).
    """
    spool = Spool.open(path)
    ended = any(op["op"] == "end" for _, op in spool.ops_from(0))
    # A run that has ended is locked only by its upload process's last attempt, which ends on
    # its own: wait for it (`autotune tune` exits without waiting for its last upload, and says
    # `autotune sync` uploads the rest). A run still being written is not waited for.
    taken = _take(spool, FINISHING_WAIT_S if ended else 0.0)
    if taken is None:
        return None, []  # its upload process finished it meanwhile
    if not taken:
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


def _take(spool: Spool, wait_s: float) -> bool | None:
    """The spool's lock, waiting at most ``wait_s``: True when taken, False when a live process
    still holds it, None when the folder went meanwhile (another process uploaded it all)."""
    end = time.monotonic() + wait_s
    while True:
        try:
            if spool.try_lock():
                if spool.path.is_dir():
                    return True
                spool.unlock()
                return None
        except FileNotFoundError:
            return None
        if time.monotonic() >= end:
            return False
        time.sleep(0.1)


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
