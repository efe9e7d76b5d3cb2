"""Synthetic outliers: pictures made from training X-rays that no chest X-ray looks like.

The scope check learns from them what a near miss is: an X-ray turned negative (its
statistics are those of an X-ray), rotated by 90 or 180 degrees, cropped to one corner, or no
X-ray at all (noise, a flat grey). Made on the uint8 cache (N x 1 x S x S), reproducibly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("negative", "rotated_180", "rotated_90", "corner_crop", "noise", "flat")


def negative(images: torch.Tensor) -> torch.Tensor:
    return 255 - images


def rotated_180(images: torch.Tensor) -> torch.Tensor:
    return torch.rot90(images, 2, (2, 3))


def rotated_90(images: torch.Tensor) -> torch.Tensor:
    half = len(images) // 2  # both ways
    return torch.cat([torch.rot90(images[:half], 1, (2, 3)), torch.rot90(images[half:], 3, (2, 3))])


def corner_crop(images: torch.Tensor) -> torch.Tensor:
    """One quarter of each image (the corners in turn), enlarged back to full size."""
    size = images.shape[-1]
    half = size // 2
    corners = [(0, 0), (0, half), (half, 0), (half, half)]
    crops = torch.stack(
        [img[:, y : y + half, x : x + half] for img, (y, x) in zip(images, _cycle(corners))]
    )
    grown = F.interpolate(crops.float(), size=(size, size), mode="bilinear", align_corners=False)
    return grown.round().clamp(0, 255).to(torch.uint8)


def noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 256, images.shape, generator=generator, dtype=torch.uint8)


def flat(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    levels = torch.randint(0, 256, (len(images), 1, 1, 1), generator=generator, dtype=torch.uint8)
    return levels.expand_as(images).clone()


def _cycle(items):
    while True:
        yield from items


def synthetic_outliers(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """As many outliers as `images`, about one sixth of each kind, in the order of KINDS."""
    generator = torch.Generator().manual_seed(seed)
    groups = torch.tensor_split(images, len(KINDS))
    made = [
        negative(groups[0]),
        rotated_180(groups[1]),
        rotated_90(groups[2]),
        corner_crop(groups[3]),
        noise(groups[4], generator),
        flat(groups[5], generator),
    ]
    return torch.cat([m for m in made if len(m)])
