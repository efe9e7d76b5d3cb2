"""Keep freed memory in the process instead of returning it to the kernel after every batch.

glibc serves allocations above 32 MB with fresh mmap() pages and unmaps them on free, so every
large activation tensor of every batch is page-faulted in again; on the 2-core benchmark machine
that was more than half of all CPU time (54% system time while caching EfficientNet features).
Serving all allocations from the heap and trimming it only above 2 GB cut EfficientNet-Lite0
inference from 85 to 26 ms per image there (docs/PERFORMANCE.md).
Linux/glibc only; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
_done = False


def tune_malloc() -> bool:
    """Apply the settings once; True when they took effect."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    ok = (
        mallopt(M_MMAP_MAX, 0)
        and mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
        and mallopt(M_TOP_PAD, 2**26)
    )
    _done = bool(ok)
    return _done
