"""autotune: a reinforcement-learning agent that tunes Linux kernel knobs for AI training jobs."""

from typing import Any

from autotune.api import count_batches, report, tuning


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed metadata when asked (importlib.metadata costs
    a tenth of a second or more at start-up, which `autotune tune` spends before the job runs)."""
    if name != "__version__":
        raise AttributeError(f"module 'autotune' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autotune")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


__all__ = ["__version__", "count_batches", "report", "tuning"]
