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
    """[0,1] gray or RGB batch -> the model's channels and normalisation.

    A gray batch whose channels are all normalised alike (SmallNet, EfficientNet-Lite) is
    normalised once and returned as a view that shows its one channel three times (stride 0,
    no copy; `is_gray_view`): a first convolution that knows it (networks/gray.py) then runs on
    the one channel with its weights summed over the three, the same function at a third of
    the work and without the 3-channel copy (docs/PERFORMANCE.md, 11). Per-channel
    normalisation (VGG16's ImageNet constants) gets the copy."""
    if images.shape[1] == 1 and channels == 3:
        if len(set(mean)) == 1 and len(set(std)) == 1:
            if (mean[0], std[0]) != (0.0, 1.0):
                images = (images - mean[0]) / std[0]
            return images.expand(-1, 3, -1, -1)
        images = images.expand(-1, 3, -1, -1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


def prepare_batch(images: torch.Tensor, prep: Preprocessing, augment=None) -> torch.Tensor:
    """uint8 cache batch -> augmented (optionally), normalised, channels-last model input.

    `augment` takes the uint8 batch and returns [0, 1] floats (see data/augment.py)."""
    images = to_unit(images) if augment is None else augment(images)
    return channels_last(normalise(images, prep.mean, prep.std, prep.channels))


def network_input(unit: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """[0, 1] gray (or RGB) images at the network's size -> its channels and normalisation,
    channels-last (what `prepare_batch` gives for uint8 images)."""
    return channels_last(normalise(unit, prep.mean, prep.std, prep.channels))


def is_gray_view(images: torch.Tensor) -> bool:
    """Is this batch one gray channel shown as several (`normalise`'s stride-0 view)?"""
    return images.ndim == 4 and images.shape[1] > 1 and images.stride(1) == 0


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """Network input in the channels-last layout oneDNN's convolutions prefer; a gray view
    stays a view (copying it would make the three channels the first convolution no longer
    reads)."""
    if is_gray_view(images):
        return images
    return images.contiguous(memory_format=torch.channels_last)
