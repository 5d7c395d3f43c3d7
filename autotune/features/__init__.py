"""Sample → observation: the one schema LiveEnv, ReplayEnv and the online tuner share."""

from autotune.features.progress import progress_rate
from autotune.features.schema import (
    FEATURE_NAMES,
    N_FEATURES,
    SCHEMA_VERSION,
    featurize,
    hist_quantile,
    knob_levels,
)

__all__ = [
    "FEATURE_NAMES",
    "N_FEATURES",
    "SCHEMA_VERSION",
    "featurize",
    "hist_quantile",
    "knob_levels",
    "progress_rate",
]
