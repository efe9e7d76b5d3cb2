"""The scope check: is an image like the chest X-rays the model was trained on?

A classifier labels whatever it is shown; a knee, a page of text or a grey square all get
NORMAL or PNEUMONIA. The scope check refuses them. It reads the model's own activations, pooled
per stage (the mean and standard deviation of each channel), from the same forward pass that
gives the logit, and scores them two ways, both fitted on the model's training X-rays only:

- Mahalanobis distance per stage (FRODO, Calli et al. 2019; Lee et al. 2018), each scaled by
  its spread on held-out X-rays and averaged: far from the training X-rays in any stage;
- a linear discriminant between the training X-rays and synthetic outliers made from them
  (negatives, rotations, corner crops, noise, flat images; `data.outliers`): the near misses
  that a distance reads as close (a negative X-ray has the statistics of an X-ray).

Each score is scaled so that 1 is its cut: the 99.9th percentile on held-out X-rays of the
model's own run (its validation split), extrapolated from its top tenth when there are too few
of them to read it off. `scope_score` is the larger of the two; above 1 the
image is out of scope. docs/VALIDATION.md ("Out of scope") gives the measurements behind each
choice.
"""

from __future__ import annotations

import torch
from torch import nn

PREFIX = "scope."  # the check's tensors, stored beside the model's in model.safetensors
CUT_QUANTILE = 0.999
# Whose features: the model's own when it grew from ImageNet weights; otherwise (SmallNet,
# anything trained from scratch) those of the packaged ImageNet EfficientNet-Lite0, at
# REFERENCE_SIZE pixels: a small network trained on a few hundred X-rays refused only three
# quarters of the outside images with its own features (docs/VALIDATION.md).
OWN = "own"
REFERENCE = "efficientnet-lite0"
REFERENCE_SIZE = 128
METHOD = (
    "max of (mean per-stage Mahalanobis distance, linear discriminant against synthetic "
    "outliers) on per-channel mean and SD of the model's stages; each 1 at the 99.9th "
    "percentile of held-out X-rays"
)


class ScopeCheck(nn.Module):
    """Scores pooled stage features; every number it needs is a buffer (saved with the model).

    `source` says whose features: OWN (the model's stages) or REFERENCE (the packaged ImageNet
    EfficientNet-Lite0 at `size` pixels, loaded from its verified package file when needed)."""

    def __init__(self, dims: list[int], source: str = OWN, size: int | None = None,
                 stages: list[int] | None = None):  # fmt: skip
        super().__init__()
        self.dims, self.source, self.size = list(dims), source, size
        # which stages of the network it reads (recorded: a model keeps its own choice)
        self.stages = list(range(len(dims))) if stages is None else list(stages)
        total = sum(dims)
        for k, d in enumerate(dims):
            self.register_buffer(f"mean_{k}", torch.zeros(d))
            self.register_buffer(f"scale_{k}", torch.ones(d))
            self.register_buffer(f"whiten_{k}", torch.eye(d))  # Cholesky factor of the precision
        # Per stage: distances scaled as (d - median) / (q99 - median) on held-out X-rays.
        self.register_buffer("distance_median", torch.zeros(len(dims)))
        self.register_buffer("distance_spread", torch.ones(len(dims)))
        self.register_buffer("discriminant", torch.zeros(total))
        # [distance cut, discriminant bias, discriminant median, discriminant cut]
        self.register_buffer("cuts", torch.tensor([1.0, 0.0, 0.0, 1.0]))

    def standardised(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [
            (f.float() - getattr(self, f"mean_{k}").float()) / getattr(self, f"scale_{k}").float()
            for k, f in enumerate(features)
        ]

    def parts(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance score, discriminant score) per image, each 1 at its cut."""
        z = self.standardised(features)
        distances = torch.stack(
            [(zk @ getattr(self, f"whiten_{k}").float()).square().sum(1) for k, zk in enumerate(z)],
            1,
        )
        spread = (distances - self.distance_median.float()) / self.distance_spread.float()
        cuts = self.cuts.float()
        distance = spread.mean(1) / cuts[0]
        logit = torch.cat(z, 1) @ self.discriminant.float() + cuts[1]
        discriminant = (logit - cuts[2]) / (cuts[3] - cuts[2])
        return distance, discriminant

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        distance, discriminant = self.parts(features)
        return torch.maximum(distance, discriminant)
