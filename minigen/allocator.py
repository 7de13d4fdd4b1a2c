"""Keep freed array memory in the process instead of returning it to the OS (glibc only).

A training step allocates and frees the same few dozen large arrays every time. glibc's
``malloc`` serves blocks above its mmap threshold with fresh ``mmap`` calls and gives freed
memory at the top of the heap back with ``trim``, so each step maps its arrays again and
touches every page anew: thousands of page faults a step, each one zero-filling a page. Raising
the mmap threshold to glibc's maximum (32 MiB on 64-bit) and the trim threshold to 1 GiB keeps
those blocks in the heap, where the next step reuses them. Peak memory does not rise: the
heap holds what the step needed at its peak either way; it is only not handed back between
steps. ``benchmarks/run.py`` measures both settings.

minigen applies this once, when it is imported, on Linux with glibc. Opt out by setting the
environment variable ``MINIGEN_MALLOC=system`` before the import (glibc's own variables such as
``MALLOC_MMAP_THRESHOLD_`` also win: minigen leaves the allocator alone when any is set).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit: 4 MiB * sizeof(long)
# A DCGAN step at batch 128 frees well over 64 MiB at once at the top of the heap; trimming only
# beyond 1 GiB keeps a step's memory in the process (measured on that step: 240 page faults,
# against 10,000 with glibc's defaults and 12,600 with a 64 MiB trim threshold).
TRIM_THRESHOLD = 1024 * 1024 * 1024

_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

applied = False  # whether this process runs with minigen's thresholds (read by the benchmarks)


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds as the module docstring says; True if they were set.

    Does nothing (and returns False) off glibc, when ``MINIGEN_MALLOC=system``, or when the
    user has tuned glibc through its environment variables.
    """
    global applied
    if os.environ.get("MINIGEN_MALLOC", "").lower() == "system":
        return False
    if any(name in os.environ for name in _GLIBC_VARIABLES) or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return applied


keep_freed_memory()  # on import: minigen/__init__.py imports this module before any other
