"""Training augmentation, per batch on [0,1] images (kornia)."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn


class Augment(nn.Module):
    """The tutorial's ImageDataGenerator: rotation within +/-5 degrees, shifts within +/-10%.

    Applied per batch on [0,1] images. Edges are filled with the nearest pixel, as Keras'
    default `fill_mode="nearest"` does. Randomness comes from torch's global generator, so
    `seed_everything` / `torch.manual_seed` makes it reproducible.
    """

    def __init__(self, degrees: float = 5.0, shift: float = 0.1):
        super().__init__()
        self.affine = K.RandomAffine(
            degrees=degrees, translate=(shift, shift), padding_mode="border", p=1.0
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.affine(images)
