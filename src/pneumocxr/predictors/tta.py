"""Test-time augmentation: the mean logit of an image and its left-right mirror.

Measured on the external set it lowered AUC for every recipe tried (docs/BENCHMARKS.md):
chest radiographs are not left-right symmetric (heart, side markers), so the mirror is an
image the model never saw. It stays available (`evaluate/compare --tta`) for other data.
"""

from __future__ import annotations

import torch

from pneumocxr.predictors.base import Predictor


class FlipTTA(Predictor):
    """Wraps another predictor; the scope check is that of the image as it is."""

    def __init__(self, inner: Predictor):
        self.inner = inner
        self.image_size, self.weights_source = inner.image_size, inner.weights_source

    @property
    def scoped(self) -> bool:
        return self.inner.scoped

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def preprocessing(self):
        return self.inner.preprocessing()

    def eval(self):
        self.inner.eval()
        return self

    def to(self, device):
        self.inner.to(device)
        return self

    def logits(self, unit: torch.Tensor) -> torch.Tensor:
        return (self.inner.logits(unit) + self.inner.logits(unit.flip(-1))) / 2

    def outputs(self, unit: torch.Tensor):
        logits, scope = self.inner.outputs(unit)
        return (logits + self.inner.logits(unit.flip(-1))) / 2, scope


def with_tta(loaded):
    """The same loaded model (any dataclass with a `predictor`), predicting with flip
    test-time augmentation."""
    from dataclasses import replace

    return replace(loaded, predictor=FlipTTA(loaded.predictor).eval())
