"""The job a session records or tunes: started held stopped (or attached), watched, tuned,
ended with one grace policy and its exit status passed through (:class:`JobSession`)."""

from autotune.job.session import JobSession
from autotune.job.stop import STOP_GRACE_S, exit_status, stop_job

__all__ = ["STOP_GRACE_S", "JobSession", "exit_status", "stop_job"]
