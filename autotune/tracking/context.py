"""The tags every run carries: what it is, where it ran, from which code, for which schema."""

from __future__ import annotations

import socket
import subprocess
from functools import cache
from pathlib import Path

from autotune.tracking.schema import (
    KINDS,
    TAG_GIT_COMMIT,
    TAG_HOST,
    TAG_KIND,
    TAG_KNOB_TABLE_VERSION,
    TAG_SCHEMA_VERSION,
)

UNKNOWN_COMMIT = "unknown"


@cache
def git_commit() -> str:
    """The commit of the autotune source tree, or ``unknown`` outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN_COMMIT
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else UNKNOWN_COMMIT


def standard_tags(kind: str) -> dict[str, str]:
    """The tags of every run of ``kind``.

    Raises:
        ValueError: ``kind`` is not one of :data:`~autotune.tracking.schema.KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}; one of {', '.join(KINDS)}")
    from autotune.features import SCHEMA_VERSION
    from autotune.knobs import KNOB_TABLE_VERSION

    return {
        TAG_KIND: kind,
        TAG_HOST: socket.gethostname(),
        TAG_GIT_COMMIT: git_commit(),
        TAG_SCHEMA_VERSION: str(SCHEMA_VERSION),
        TAG_KNOB_TABLE_VERSION: str(KNOB_TABLE_VERSION),
    }
