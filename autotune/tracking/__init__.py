"""MLflow tracking: what training, evaluation and tuning log through.

``tracked_run`` opens a run that is spooled locally and uploaded in the background, so a
tracking server that is down never stops the work it records; ``autotune sync`` uploads what
is left. The names every run uses are in :mod:`autotune.tracking.schema`. The SB3 adapter
(:mod:`autotune.tracking.sb3`) is imported on its own, since it needs stable-baselines3.
"""

from autotune.tracking.models import resolve_model
from autotune.tracking.run import TrackedRun, tracked_run
from autotune.tracking.sync import SyncReport, sync_all

__all__ = ["SyncReport", "TrackedRun", "resolve_model", "sync_all", "tracked_run"]
