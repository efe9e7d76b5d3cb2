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
import gc
import os
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


def release_memory(collect: bool = True) -> bool:
    """Give the freed memory the tuning keeps back to the kernel, between phases of work whose
    batches no longer need it (after decoding a dataset, between training phases and models,
    before evaluating). `collect` first frees what only reference cycles keep alive: after
    one SmallNet epoch its Trainer, optimizer state and split copies of the images were such
    garbage, and the process went from 3.17 GB to 0.61 GB RSS with both (to 3.17 GB with the
    trim alone; docs/PERFORMANCE.md, "Memory while training"). The next batches page their
    working set in once. True when glibc did it."""
    global _baseline
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    _baseline = None  # measured at the next `release_if_grown`, with a batch's working set
    return bool(trim(0))


_baseline: int | None = None
GROWTH_LIMIT = 2**30


def release_if_grown(limit: int = GROWTH_LIMIT) -> bool:
    """`release_memory(collect=False)` when the process holds more than `limit` bytes above
    its base: what it held at the first call after the last release, that is after the first
    batch of work, whose working set the tuning then keeps for the next. A bound on what the
    heap's fragmentation adds, not on what is alive.

    Within a SmallNet epoch the heap grew by 100 MB every few steps while the live memory did
    not (small tensors that live for the epoch, its metrics and logged values, land in the
    holes the freed activations leave, and the next activation no longer fits): one epoch of
    a `pneumocxr run` went from 2.7 to 5.1 GB RSS and fell back at its end. Reading the RSS
    costs microseconds, so it can be asked after every batch; it trims only past `limit`, and a
    step whose own activations take more than `limit` (fine-tuning every layer) raises the
    base instead of being trimmed every time. True when it trimmed."""
    global _baseline
    now = resident_bytes()
    if now is None:
        return False
    if _baseline is None:
        _baseline = now
        return False
    if now > _baseline + limit:
        return release_memory(collect=False)
    return False


def resident_bytes() -> int | None:
    """The process's resident set, from /proc (None where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim():
    """glibc's malloc_trim, or None (another libc, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
