"""Test-time augmentation: the mean logit of an image and its left-right mirror.

Measured on the external set it lowered AUC for every recipe tried (docs/BENCHMARKS.md):
chest radiographs are not left-right symmetric (heart, side markers), so the mirror is an
image the model never saw. It stays available (`evaluate/compare --tta`) for other data.
"""

from __future__ import annotations

import torch
from torch import nn

from pneumocxr.models.base import PneumoNet


class FlipTTA(PneumoNet):
    name = "flip-tta"
    min_image_size = 1

    def __init__(self, model: PneumoNet):
        super().__init__(model.image_size)
        self.inner = model
        self.weights_source = model.weights_source

    def preprocessing(self):
        return self.inner.preprocessing()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.inner(x) + self.inner(x.flip(-1))) / 2

    def logits_and_scope(self, unit: torch.Tensor):
        """Mean logit of the image and its mirror; the scope check of the image as it is."""
        logits, scope = self.inner.logits_and_scope(unit)
        mirrored = self.inner(self.inner.model_input(unit.flip(-1)))
        return (logits + mirrored) / 2, scope

    def scope_ready(self) -> bool:
        return self.inner.scope_ready()

    def stages(self) -> list[nn.Module]:
        return [self]

    def run_stages(self, x, start: int = 0, stop=None):
        return self(x)

    def gradcam_layer(self) -> nn.Module:
        return self.inner.gradcam_layer()


def with_tta(loaded):
    """The same loaded model, predicting with flip test-time augmentation."""
    from dataclasses import replace

    return replace(loaded, model=FlipTTA(loaded.model).eval())
