"""Bounding the memory a training phase keeps (docs/PERFORMANCE.md, "Memory while training").

The malloc tuning (`_malloc.tune_malloc`) keeps freed memory for the next batch, which is what
makes the batches fast, but within an epoch the heap fragments and grows while nothing more is
alive. `MemoryBound` trims it when it has grown past a bound (`_malloc.release_if_grown`); the
phases themselves release what they freed at their start and end (`training/loop.py`).
"""

from __future__ import annotations

import lightning as L

from pneumocxr._malloc import GROWTH_LIMIT, release_if_grown


class MemoryBound(L.Callback):
    """After every training batch and every validation: trim the heap when the process holds
    more than `limit` bytes above what it held after the first batch since the last trim
    (reading the RSS costs microseconds; a step's own working set is part of that base, so a
    recipe with large activations is not trimmed at every batch)."""

    def __init__(self, limit: int = GROWTH_LIMIT):
        self.limit = limit
        self.trims = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.trims += release_if_grown(self.limit)

    def on_validation_end(self, trainer, module) -> None:
        self.trims += release_if_grown(self.limit)
