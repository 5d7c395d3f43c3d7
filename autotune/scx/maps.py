"""The pinned maps of our sched_ext scheduler, read and written through libbpf (ctypes).

The layouts are those of ``bpf/scx_autotune.h``, packed here by hand:

* ``roles``: ``struct autotune_member {u64 id; u32 kind; u32 pad}`` → ``u32`` group;
* ``weights``: ``u32`` group → ``struct autotune_weight {u32 weight; u32 slice_us}``;
* ``exit_info``: ``u32 0`` → ``struct autotune_exit {s64 kind; char reason[128]}``.

A *group* is what the C calls a role: a slot in ``weights`` that a tuning session takes for one
of its roles, so that two sessions on one node never share a weight.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from functools import cache
from pathlib import Path
from types import TracebackType

MEMBER_TGID = 1
MEMBER_CGROUP = 2
WEIGHT_DEFAULT = 100  # nice 0 on sched_ext's scale (as cgroup v2 cpu.weight)
WEIGHT_MIN = 1
WEIGHT_MAX = 10000
MAX_GROUPS = 16  # AUTOTUNE_MAX_ROLES

_MEMBER = struct.Struct("=QII")
_GROUP = struct.Struct("=I")
_WEIGHT = struct.Struct("=II")
_EXIT = struct.Struct("=q128s")
_BPF_ANY = 0


@cache
def _libbpf() -> ctypes.CDLL:
    """libbpf's shared library (its map calls are a stable ABI since libbpf 0.x)."""
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise OSError(
            errno.ENOENT, f"libbpf is not installed ({e}): apt-get install libbpf1"
        ) from e
    lib.bpf_obj_get.argtypes = [ctypes.c_char_p]
    lib.bpf_map_update_elem.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_ulonglong,
    ]
    lib.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.bpf_map_delete_elem.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.bpf_map_get_next_key.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    for fn in ("bpf_obj_get", "bpf_map_update_elem", "bpf_map_lookup_elem"):
        getattr(lib, fn).restype = ctypes.c_int
    lib.bpf_map_delete_elem.restype = ctypes.c_int
    lib.bpf_map_get_next_key.restype = ctypes.c_int
    return lib


def _errno(rc: int) -> int:
    # libbpf 1.x returns -errno; 0.x returned -1 and set errno.
    return -rc if rc < -1 else (ctypes.get_errno() or errno.EIO)


class PinnedMap:
    """One pinned BPF map, opened by path; keys and values are bytes of fixed sizes."""

    def __init__(self, path: Path, key_size: int, value_size: int) -> None:
        self.path = path
        self.key_size = key_size
        self.value_size = value_size
        fd = _libbpf().bpf_obj_get(os.fsencode(path))
        if fd < 0:
            code = _errno(fd)
            raise OSError(code, f"cannot open the pinned map {path}: {os.strerror(code)}")
        self.fd: int | None = fd

    def _fd(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, f"{self.path} is closed")
        return self.fd

    def update(self, key: bytes, value: bytes) -> None:
        rc = _libbpf().bpf_map_update_elem(self._fd(), key, value, _BPF_ANY)
        if rc < 0:
            code = _errno(rc)
            raise OSError(code, f"updating {self.path}: {os.strerror(code)}")

    def lookup(self, key: bytes) -> bytes | None:
        out = ctypes.create_string_buffer(self.value_size)
        rc = _libbpf().bpf_map_lookup_elem(self._fd(), key, out)
        if rc < 0:
            code = _errno(rc)
            if code == errno.ENOENT:
                return None
            raise OSError(code, f"reading {self.path}: {os.strerror(code)}")
        return out.raw

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False when it was not there."""
        rc = _libbpf().bpf_map_delete_elem(self._fd(), key)
        if rc < 0:
            code = _errno(rc)
            if code == errno.ENOENT:
                return False
            raise OSError(code, f"deleting from {self.path}: {os.strerror(code)}")
        return True

    def all_keys(self) -> list[bytes]:
        out: list[bytes] = []
        prev: bytes | None = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while _libbpf().bpf_map_get_next_key(self._fd(), prev, nxt) == 0:
            prev = nxt.raw
            out.append(prev)
        return out

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class SchedulerMaps:
    """The ``roles``, ``weights`` and ``exit_info`` maps pinned in ``pin_dir``.

    Raises:
        OSError: a map is not pinned there (the scheduler is not loaded) or cannot be opened.
    """

    def __init__(self, pin_dir: Path) -> None:
        self.pin_dir = pin_dir
        self.roles = PinnedMap(pin_dir / "roles", _MEMBER.size, _GROUP.size)
        try:
            self.weights = PinnedMap(pin_dir / "weights", _GROUP.size, _WEIGHT.size)
            self.exit_info = PinnedMap(pin_dir / "exit_info", _GROUP.size, _EXIT.size)
        except OSError:
            self.close()
            raise

    def __enter__(self) -> SchedulerMaps:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for m in ("roles", "weights", "exit_info"):
            if hasattr(self, m):
                getattr(self, m).close()

    # --- weights ----------------------------------------------------------------------------

    def set_weight(self, group: int, weight: int, slice_us: int = 0) -> None:
        """Set a group's weight (1..10000, 100 = nice 0) and slice (0 = the default)."""
        if not 0 <= group < MAX_GROUPS:
            raise ValueError(f"group {group} outside 0..{MAX_GROUPS - 1}")
        if not WEIGHT_MIN <= weight <= WEIGHT_MAX:
            raise ValueError(f"weight {weight} outside {WEIGHT_MIN}..{WEIGHT_MAX}")
        self.weights.update(_GROUP.pack(group), _WEIGHT.pack(weight, slice_us))

    def weight(self, group: int) -> tuple[int, int] | None:
        """A group's ``(weight, slice_us)``, or None when it has none."""
        raw = self.weights.lookup(_GROUP.pack(group))
        return None if raw is None else _WEIGHT.unpack(raw)

    def clear_weight(self, group: int) -> bool:
        return self.weights.delete(_GROUP.pack(group))

    def groups(self) -> dict[int, tuple[int, int]]:
        """Every group with a weight: group → ``(weight, slice_us)``."""
        out: dict[int, tuple[int, int]] = {}
        for key in self.weights.all_keys():
            (group,) = _GROUP.unpack(key)
            w = self.weight(group)
            if w is not None:
                out[group] = w
        return out

    def free_groups(self, n: int) -> list[int]:
        """``n`` groups no session holds (lowest first).

        Raises:
            OSError: fewer than ``n`` are free.
        """
        taken = set(self.groups())
        free = [g for g in range(MAX_GROUPS) if g not in taken][:n]
        if len(free) < n:
            raise OSError(errno.ENOSPC, f"all {MAX_GROUPS} weight groups of {self.pin_dir} in use")
        return free

    # --- members ----------------------------------------------------------------------------

    def add_member(self, kind: int, ident: int, group: int) -> None:
        """Put a process (``MEMBER_TGID``) or a cgroup v2 id (``MEMBER_CGROUP``) in a group."""
        self.roles.update(_MEMBER.pack(ident, kind, 0), _GROUP.pack(group))

    def member(self, kind: int, ident: int) -> int | None:
        raw = self.roles.lookup(_MEMBER.pack(ident, kind, 0))
        return None if raw is None else int(_GROUP.unpack(raw)[0])

    def remove_member(self, kind: int, ident: int) -> bool:
        return self.roles.delete(_MEMBER.pack(ident, kind, 0))

    def members(self) -> dict[tuple[int, int], int]:
        """Every member: ``(kind, id)`` → group."""
        out: dict[tuple[int, int], int] = {}
        for key in self.roles.all_keys():
            ident, kind, _ = _MEMBER.unpack(key)
            group = self.member(kind, ident)
            if group is not None:
                out[(kind, ident)] = group
        return out

    # --- exit -------------------------------------------------------------------------------

    def exit_reason(self) -> str | None:
        """Why the scheduler stopped (its ops.exit), or None while it has not."""
        raw = self.exit_info.lookup(_GROUP.pack(0))
        if raw is None:
            return None
        kind, reason = _EXIT.unpack(raw)
        if not kind:
            return None
        text = reason.split(b"\0", 1)[0].decode(errors="replace")
        return f"{text or 'no reason given'} (exit kind {kind})"
