"""The knob table: every knob the agent may turn, as data.

Action spaces, CLI help, bound checks and the journal all derive from :data:`KNOBS`; nothing else
hard-codes a knob's range.
"""

from autotune.knobs.table import (
    KNOB_TABLE_VERSION,
    KNOBS,
    READAHEAD_DEFAULT_KB,
    Family,
    Knob,
    KnobRangeError,
    by_name,
    default_levels,
    default_values,
    describe,
    of_family,
)

__all__ = [
    "KNOBS",
    "KNOB_TABLE_VERSION",
    "READAHEAD_DEFAULT_KB",
    "Family",
    "Knob",
    "KnobRangeError",
    "by_name",
    "default_levels",
    "default_values",
    "describe",
    "of_family",
]
