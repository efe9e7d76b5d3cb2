"""Batch-level transforms: uint8 cache -> model input, and the tutorial's augmentation."""

from __future__ import annotations

from collections.abc import Sequence

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


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0-255 -> float 0-1 (the tutorial's rescale=1./255)."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def normalise(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], channels: int = 3
) -> torch.Tensor:
    """[0,1] gray or RGB batch -> the model's channels and normalisation."""
    if images.shape[1] == 1 and channels == 3:
        images = images.expand(-1, 3, -1, -1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t
