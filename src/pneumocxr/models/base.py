"""What every pneumocxr architecture provides.

A model is a chain of *stages* whose composition is its forward pass. The last stage is the
classification head; the others form the backbone. Freezing, feature caching and Grad-CAM are
written once against this interface instead of once per architecture.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from pneumocxr.data.preprocessing import (  # noqa: F401 (re-exported for models)
    IMAGENET_NORMALISATION,
    NO_NORMALISATION,
    Preprocessing,
)
from pneumocxr.data.transforms import normalise
from pneumocxr.errors import PneumoError
from pneumocxr.models.scope import OWN, ScopeCheck, forward_pooled, reference_features


class PneumoNet(nn.Module):
    """Base class: subclasses define `stages()`, `gradcam_layer()` and the class attributes."""

    name: ClassVar[str]
    default_image_size: ClassVar[int] = 224
    min_image_size: ClassVar[int] = 32
    default_lr: ClassVar[float] = 1e-3
    normalisation: ClassVar[tuple] = NO_NORMALISATION
    pretrained_source: ClassVar[str | None] = None  # where ImageNet weights come from
    default_unfreeze: ClassVar[str] = "0"  # backbone stages fine-tuned after the head
    explainable: ClassVar[bool] = True  # Grad-CAM possible (not for an ONNX export)

    def __init__(self, image_size: int):
        super().__init__()
        if image_size < self.min_image_size:
            raise PneumoError(
                f"{self.name} needs images of at least {self.min_image_size} pixels, "
                f"got {image_size}"
            )
        self.image_size = image_size
        self.weights_source = "random initialisation"
        self.scope: ScopeCheck | None = None  # fitted after training (models/scope.py)

    # -- to be provided by each architecture -------------------------------------------
    def stages(self) -> list[nn.Module]:
        raise NotImplementedError

    def gradcam_layer(self) -> nn.Module:
        raise NotImplementedError

    def scope_stages(self) -> list[int]:
        """Stages whose pooled outputs the scope check reads: all but the head."""
        return list(range(len(self.stages()) - 1))

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """(convolution, the BatchNorm right after it) submodule names, for folding."""
        return []

    def load_pretrained(self, weights: str) -> None:
        """Load backbone weights: "default" (the model's usual source) or a file path."""
        raise PneumoError(f"{self.name} has no pretrained weights; use --weights none")

    # -- shared behaviour ----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_stages(x)

    def run_stages(self, x: torch.Tensor, start: int = 0, stop: int | None = None):
        for stage in self.stages()[start:stop]:
            x = stage(x)
        return x

    def model_input(self, unit: torch.Tensor) -> torch.Tensor:
        """[0, 1] gray images at the model's size -> its channels and normalisation."""
        prep = self.preprocessing()
        x = normalise(unit, prep.mean, prep.std, prep.channels)
        return x.contiguous(memory_format=torch.channels_last)

    def logits_and_scope(self, unit: torch.Tensor):
        """(logits, scope scores or None without a scope check) for [0, 1] gray images; one
        forward pass gives both when the check reads the model's own stages."""
        if self.scope is None:
            return self(self.model_input(unit)), None
        if self.scope.source == OWN:
            logits, features = forward_pooled(self, self.model_input(unit), self.scope.stages)
        else:
            logits, features = self(self.model_input(unit)), reference_features(self.scope, unit)
        return logits, self.scope(features)

    def scope_ready(self) -> bool:
        """Has it a scope check to answer with?"""
        return self.scope is not None

    def scope_features(self, unit: torch.Tensor, check: ScopeCheck) -> list[torch.Tensor]:
        """The pooled features `check` reads (for fitting it)."""
        if check.source == OWN:
            return forward_pooled(self, self.model_input(unit), check.stages)[1]
        return reference_features(check, unit)

    @property
    def backbone_stages(self) -> int:
        return len(self.stages()) - 1

    def first_trainable_stage(self, unfreeze: int | str) -> int:
        """Stage index where training starts: 0 trains all, `backbone_stages` the head only."""
        if str(unfreeze).lower() == "all":
            return 0
        n = int(unfreeze) if str(unfreeze).isdigit() else -1
        if not 0 <= n <= self.backbone_stages:
            raise PneumoError(
                f"--unfreeze must be between 0 and {self.backbone_stages} for {self.name} "
                f"(or 'all'), got {unfreeze!r}"
            )
        return self.backbone_stages - n

    def freeze_before(self, start: int) -> None:
        """Freeze stages before `start`; they also stay in eval mode (see `train`)."""
        self._frozen_until = start
        for i, stage in enumerate(self.stages()):
            for p in stage.parameters():
                p.requires_grad_(i >= start)

    def train(self, mode: bool = True):
        super().train(mode)
        # Frozen stages keep their BatchNorm statistics: eval mode even while training.
        for stage in self.stages()[: getattr(self, "_frozen_until", 0)]:
            stage.eval()
        return self

    def preprocessing(self) -> Preprocessing:
        mean, std = self.normalisation
        return Preprocessing(image_size=self.image_size, mean=tuple(mean), std=tuple(std))

    @classmethod
    def create(cls, image_size: int | None = None, weights: str = "default") -> PneumoNet:
        """Build the model; `weights` is "default", "none" or a file of backbone weights."""
        model = cls(cls.default_image_size if image_size is None else image_size)
        if weights != "none" and (cls.pretrained_source or weights != "default"):
            model.load_pretrained(weights)
        return model


def init_like_keras(module: nn.Module) -> None:
    """Keras' defaults (Glorot-uniform kernels, zero biases): the tutorial's starting point."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
