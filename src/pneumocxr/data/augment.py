"""Training augmentation, per batch: uint8 cache batch in, augmented [0,1] batch out.

Policies (`--augment`):
- `tutorial`: the tutorial's ImageDataGenerator, rotation within +/-5 degrees and shifts within
  +/-10%, edges filled with the nearest pixel (Keras' default `fill_mode="nearest"`).
- `strong`: random-resized crops (60-100% of the area), rotation +/-10 degrees, shifts, zoom,
  brightness, contrast and gamma jitter, and random erasing of a small patch (which also hides
  burned-in markers now and then), for models that must hold up on other hospitals' images.
- `none`.
Independently, `corruption_p` passes that share of the images through one of the stress test's
acquisition corruptions (data/corruptions.py) at a random severity, before everything else.

Randomness comes from torch's global generator, so `seed_everything` makes a run reproducible.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from pneumocxr.data.corruptions import CORRUPTIONS
from pneumocxr.data.transforms import to_unit
from pneumocxr.errors import PneumoError

POLICIES = ("tutorial", "strong", "none")


class Augment(nn.Module):
    def __init__(self, policy: str = "tutorial", corruption_p: float = 0.0, size: int = 224):
        super().__init__()
        if policy not in POLICIES:
            raise PneumoError(f"--augment must be one of {', '.join(POLICIES)}, got {policy!r}")
        if not 0.0 <= corruption_p <= 1.0:
            raise PneumoError(f"--corruption-p must be between 0 and 1, got {corruption_p}")
        self.policy, self.corruption_p = policy, corruption_p
        self.ops = nn.Sequential(*_policy_ops(policy, size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0,1] float) N x C x H x W -> augmented float in [0,1]."""
        if self.corruption_p > 0:
            images = corrupt_some(images, self.corruption_p)
        images = to_unit(images)
        return self.ops(images).clamp(0, 1) if len(self.ops) else images


def _policy_ops(policy: str, size: int) -> list[nn.Module]:
    if policy == "tutorial":
        return [K.RandomAffine(degrees=5.0, translate=(0.1, 0.1), padding_mode="border", p=1.0)]
    if policy == "strong":
        return [
            K.RandomResizedCrop((size, size), scale=(0.6, 1.0), ratio=(0.8, 1.25), p=1.0),
            K.RandomAffine(
                degrees=10.0, translate=(0.1, 0.1), scale=(0.9, 1.1), padding_mode="border", p=1.0
            ),
            K.RandomBrightness((0.8, 1.2), p=0.8),
            K.RandomContrast((0.8, 1.2), p=0.8),
            K.RandomGamma((0.7, 1.5), p=0.8),
            K.RandomErasing(scale=(0.01, 0.05), ratio=(0.3, 3.3), p=0.3),
        ]
    return []


def corrupt_some(images: torch.Tensor, share: float) -> torch.Tensor:
    """Give about `share` of the images one random corruption at a random severity each."""
    device, was_float = images.device, images.is_floating_point()
    pixels = images.detach().cpu()
    pixels = (pixels.clamp(0, 1) * 255).round().to(torch.uint8) if was_float else pixels.clone()
    gray = pixels[:, :1]
    names = list(CORRUPTIONS)
    hit = torch.rand(len(pixels)) < share
    kind = torch.randint(0, len(names), (len(pixels),))
    severity = torch.randint(1, 6, (len(pixels),))
    for k, name in enumerate(names):
        for level in range(1, 6):
            rows = (hit & (kind == k) & (severity == level)).nonzero().flatten()
            if len(rows):
                gray[rows] = CORRUPTIONS[name](gray[rows], level)
    pixels = gray.expand_as(pixels).contiguous() if pixels.shape[1] > 1 else gray
    return (pixels.float() / 255 if was_float else pixels).to(device)
