"""A trace's file metadata: what was recorded, where, and with which schema versions.

Stored as one JSON value under the schema metadata key :data:`META_KEY`, which both the Arrow
IPC stream (the ``.partial`` file) and Parquet keep.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from autotune.features import SCHEMA_VERSION
from autotune.knobs import KNOB_TABLE_VERSION
from autotune.system import blockdev

META_KEY = b"autotune.trace"
# Bumped whenever a column is added, removed, renamed or changes meaning.
TRACE_FORMAT_VERSION = 1


def build(
    *,
    target: str,
    command: Sequence[str] | None,
    interval_s: float,
    explore: bool,
    source: str,
    start_wall: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata of a recording that starts now.

    Args:
        target: how the target was given (``pid 123 (python train.py)``, ``cgroup …``).
        command: the target's command line, when known.
        interval_s: the control interval asked for.
        explore: whether knobs were perturbed while recording.
        source: ``bpf`` or ``proc``: the collector in use.
        start_wall: Unix time the recording started (now when None).
        extra: more keys to keep.
    """
    start = time.time() if start_wall is None else start_wall
    return {
        "format_version": TRACE_FORMAT_VERSION,
        "features_schema_version": SCHEMA_VERSION,
        "knob_table_version": KNOB_TABLE_VERSION,
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "cpus": os.cpu_count() or 0,
        "block_devices": [
            {"name": d.name, "read_ahead_kb": d.read_ahead_kb, "rotational": d.rotational}
            for d in blockdev.devices()
        ],
        "target": target,
        "command": list(command) if command else None,
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start)),
        "start_wall": start,
        "interval_s": interval_s,
        "explore": explore,
        "source": source,
        **(extra or {}),
    }


def attach(schema: pa.Schema, meta: Mapping[str, Any]) -> pa.Schema:
    """``schema`` carrying ``meta``."""
    return schema.with_metadata({META_KEY: json.dumps(dict(meta), sort_keys=True).encode()})


def extract(schema: pa.Schema) -> dict[str, Any] | None:
    """The metadata a trace's schema carries, or None when it is not an autotune trace."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
