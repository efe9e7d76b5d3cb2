"""The one interface every predictor implements: a single network with its scope check, an
ensemble, flip test-time augmentation and an ONNX Runtime session alike.

A predictor takes gray images in [0, 1] at its `image_size` (N x 1 x S x S float) and gives
one logit per image and, when it has a scope check, one scope score per image (above 1: out of
scope). Everything that turns those into an answer comes after it (`decision/`), and whatever
prepares the images comes before it (`data/`). Like scikit-learn's meta-estimators, the
ensemble and test-time augmentation wrap other predictors instead of imitating a network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from pneumocxr.data.preprocessing import Preprocessing


class Predictor(ABC):
    image_size: int
    weights_source: str = "random initialisation"
    # Grad-CAM needs networks with gradients: `members()` are then NetworkPredictors.
    explainable: bool = False

    @abstractmethod
    def logits(self, unit: torch.Tensor) -> torch.Tensor:
        """One logit per image (N), without the scope check."""

    @abstractmethod
    def outputs(self, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits N, scope scores N, or None without a scope check), in one pass where the
        check reads the network's own stages."""

    @property
    @abstractmethod
    def scoped(self) -> bool:
        """Has it a scope check to answer with?"""

    @abstractmethod
    def preprocessing(self) -> Preprocessing:
        """What model.json records as its input contract."""

    def members(self) -> list:
        """The single-network predictors it combines ([self] for one network)."""
        return [self]

    def member_unit(self, member, unit: torch.Tensor) -> torch.Tensor:
        """Its [0, 1] gray input as `member` takes it (resized for an ensemble)."""
        return unit

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device):
        """The predictor on `device` (a CPU-only one stays where it is)."""
        return self

    def eval(self):
        return self
