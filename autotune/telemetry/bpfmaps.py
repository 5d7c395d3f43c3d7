"""What the telemetry BPF programs share with Python: their ``-D`` flags and raw map access.

The C side (``bpf/telemetry.h``) takes every size and counter index from :func:`cflags`, built
from :mod:`autotune.roles` and :mod:`autotune.telemetry.sample`, so Python is their one
definition. Maps are read with one ``bpf_lookup_elem`` into a numpy buffer: bcc's ctypes
wrappers cost more than the read itself, and the recorder reads every 250 ms.
"""

from __future__ import annotations

import ctypes as ct
import itertools
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autotune.roles import ROLE_INDEX, ROLES
from autotune.telemetry.sample import BLOCK_COUNTERS, N_SLOTS, ROLE_COUNTERS, B, C

BPF_ANY = 0
BPF_NOEXIST = 1
TRACEFS_EVENTS = Path("/sys/kernel/tracing/events")
# sched.bpf.c's public role table, imported by pagecache.bpf.c. bcc links an "extern" table to a
# public one by name through a registry that outlives the module: it keeps the fd number of a
# table whose module was cleaned up, and a later extern of that name would get whatever map has
# that number now. Each load therefore gives the table a name of its own (roles_table_name()).
ROLES_TABLE = "autotune_roles"
_roles_generation = itertools.count()


def roles_table_name() -> str:
    """A role-table name not used before in this process."""
    return f"{ROLES_TABLE}_{next(_roles_generation)}"


Words = npt.NDArray[np.uint64]

# The role table's values, as bpf/telemetry.h lays them out: a role index in the low byte, a flag
# (exiting), and from bit 16 the job's slot. Slot 0 is nobody's (a task absent from the table).
JOB_SLOTS = 16  # slots in the counters, 0 included: one process watches up to 15 jobs with BPF
INFO_ROLE_MASK = 0xFF
INFO_EXITING = 0x200
INFO_JOB_SHIFT = 16


def info(slot: int, role: int) -> int:
    """The role table value of a thread of the job in ``slot``."""
    return slot << INFO_JOB_SHIFT | role


def info_job(value: int) -> int:
    """The job slot of a role table value."""
    return (value >> INFO_JOB_SHIFT) & 0xFF


def cflags() -> list[str]:
    """The ``-D`` flags every telemetry program is compiled with."""
    flags = [
        f"-DN_ROLES={len(ROLES)}",
        f"-DN_COUNTERS={len(ROLE_COUNTERS)}",
        f"-DN_SLOTS={N_SLOTS}",
        f"-DN_BLOCK={len(BLOCK_COUNTERS)}",
        f"-DN_JOBS={JOB_SLOTS}",
    ]
    flags += [f"-DROLE_{role.name}={i}" for role, i in ROLE_INDEX.items()]
    flags += [f"-DC_{name.upper()}={i}" for name, i in C.items()]
    flags += [f"-DB_{name.upper()}={i}" for name, i in B.items()]
    return flags


def tracepoint_has(category: str, event: str, field: str | None = None) -> bool:
    """Whether this kernel has tracepoint ``category:event`` (with argument ``field``)."""
    fmt = TRACEFS_EVENTS / category / event / "format"
    try:
        text = fmt.read_text()
    except OSError:
        return False
    return field is None or f" {field};" in text


@cache
def possible_cpus() -> int:
    """How many CPUs a per-CPU map holds a value for (possible, not online, CPUs)."""
    from bcc.utils import get_possible_cpus

    return len(get_possible_cpus())


def _lib() -> Any:
    from bcc.libbcc import lib

    return lib


def read_percpu(table: Any, words: int, key: int = 0) -> Words:
    """One element of a per-CPU array of ``words`` u64s: shape ``(possible CPUs, words)``."""
    buf = np.zeros((possible_cpus(), words), dtype=np.uint64)
    k = ct.c_uint32(key)
    if _lib().bpf_lookup_elem(table.get_fd(), ct.byref(k), buf.ctypes.data_as(ct.c_void_p)) != 0:
        buf[:] = 0  # an array element always exists; a failed read counts nothing
    return buf


def percpu_hash_items(
    table: Any, key_type: type[ct.c_uint32], words: int
) -> Iterator[tuple[int, Words]]:
    """Every ``(key, values)`` of a per-CPU hash whose values are ``words`` u64s."""
    lib = _lib()
    fd = table.get_fd()
    buf = np.zeros((possible_cpus(), words), dtype=np.uint64)
    for key in table:
        k = key_type(key.value)
        if lib.bpf_lookup_elem(fd, ct.byref(k), buf.ctypes.data_as(ct.c_void_p)) == 0:
            yield int(k.value), buf.copy()


def u32_items(table: Any) -> dict[int, int]:
    """A hash of u32 → u32 as a dict (one batched syscall where the kernel has it)."""
    try:
        # bcc yields plain ints from its batch arrays, ctypes values from items().
        return {int(k): int(v) for k, v in table.items_lookup_batch()}
    except Exception:  # kernels before 5.6 have no batch ops: walk the keys
        return {int(k.value): int(v.value) for k, v in table.items()}


def insert_new(table: Any, key: int, value: int) -> bool:
    """Insert ``key → value`` into a u32 hash unless the key is there; True when inserted."""
    k, v = ct.c_uint32(key), ct.c_uint32(value)
    return bool(_lib().bpf_update_elem(table.get_fd(), ct.byref(k), ct.byref(v), BPF_NOEXIST) == 0)


def put(table: Any, key: int, value: int) -> None:
    """Set ``key → value`` in a u32 hash."""
    k, v = ct.c_uint32(key), ct.c_uint32(value)
    _lib().bpf_update_elem(table.get_fd(), ct.byref(k), ct.byref(v), BPF_ANY)


def delete(table: Any, key: int) -> bool:
    """Remove ``key`` from a u32 hash; True when it was there."""
    k = ct.c_uint32(key)
    return bool(_lib().bpf_delete_elem(table.get_fd(), ct.byref(k)) == 0)


def bump(table: Any) -> None:
    """Add one to a u32 array's element 0 (a generation counter the kernel compares)."""
    put(table, 0, (get(table, 0) or 0) + 1)


def get(table: Any, key: int) -> int | None:
    """The value of ``key`` in a u32 hash, or None when absent."""
    k, v = ct.c_uint32(key), ct.c_uint32(0)
    if _lib().bpf_lookup_elem(table.get_fd(), ct.byref(k), ct.byref(v)) != 0:
        return None
    return int(v.value)
