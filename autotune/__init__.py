"""autotune: a reinforcement-learning agent that tunes Linux kernel knobs for AI training jobs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("autotune")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from autotune.api import count_batches, report, tuning

__all__ = ["__version__", "count_batches", "report", "tuning"]
