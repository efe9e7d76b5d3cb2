"""Batch-level transforms from the uint8 cache to model input (torch only, no augmentation
library, so that prediction starts fast)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pneumocxr.data.preprocessing import Preprocessing


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


def prepare_batch(images: torch.Tensor, prep: Preprocessing, augment=None) -> torch.Tensor:
    """uint8 cache batch -> augmented (optionally), normalised, channels-last model input.

    `augment` takes the uint8 batch and returns [0, 1] floats (see data/augment.py)."""
    images = to_unit(images) if augment is None else augment(images)
    images = normalise(images, prep.mean, prep.std, prep.channels)
    return images.contiguous(memory_format=torch.channels_last)


def network_input(unit: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """[0, 1] gray (or RGB) images at the network's size -> its channels and normalisation,
    channels-last (what `prepare_batch` gives for uint8 images)."""
    x = normalise(unit, prep.mean, prep.std, prep.channels)
    return x.contiguous(memory_format=torch.channels_last)
