"""The C library through ctypes, its calls typed once: ``madvise`` on this process's own memory
(autotune.system.hugepages, autotune.system.footprint) and glibc's ``malloc_trim``."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def libc() -> ctypes.CDLL:
    """This process's C library, ``madvise`` (and ``malloc_trim`` where it is glibc) typed.

    Raises:
        OSError: no C library could be opened.
    """
    lib = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    lib.madvise.restype = ctypes.c_int
    if hasattr(lib, "malloc_trim"):
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
        lib.malloc_trim.restype = ctypes.c_int
    return lib
