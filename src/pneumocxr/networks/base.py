"""What every pneumocxr network provides: a chain of stages, and nothing of how it is used.

A network is a chain of *stages* whose composition is its forward pass. The last stage is the
classification head; the others form the backbone. Freezing, feature caching, the scope
check's stage features and Grad-CAM are written once against this interface instead of once
per architecture. A network knows its input size and normalisation and where its pretrained
weights come from; it knows nothing of the scope check, calibration, thresholds or model
files (those wrap it: `predictors/`, `artifact/`).
"""

from __future__ import annotations

import threading
import weakref
from typing import ClassVar

import torch
from torch import nn

from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.errors import PneumoError
from pneumocxr.task import NO_NORMALISATION


class PneumoNet(nn.Module):
    """Base class: subclasses define `stages()`, `gradcam_layer()` and the class attributes."""

    name: ClassVar[str]
    default_image_size: ClassVar[int] = 224
    min_image_size: ClassVar[int] = 32
    default_lr: ClassVar[float] = 1e-3
    normalisation: ClassVar[tuple] = NO_NORMALISATION
    pretrained_source: ClassVar[str | None] = None  # where ImageNet weights come from
    default_unfreeze: ClassVar[str] = "0"  # backbone stages fine-tuned after the head
    packaged_weights: ClassVar[bool] = False  # pretrained weights inside an installed package

    def __init__(self, image_size: int):
        super().__init__()
        if image_size < self.min_image_size:
            raise PneumoError(
                f"{self.name} needs images of at least {self.min_image_size} pixels, "
                f"got {image_size}"
            )
        self.image_size = image_size
        self.weights_source = "random initialisation"

    # -- to be provided by each architecture -------------------------------------------
    def stages(self) -> list[nn.Module]:
        raise NotImplementedError

    def gradcam_layer(self) -> nn.Module:
        raise NotImplementedError

    def feature_stages(self) -> list[int]:
        """Stages whose pooled outputs describe an image (what the scope check reads): all
        but the head."""
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

    @property
    def backbone_stages(self) -> int:
        return len(self.stages()) - 1

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
        """Build the network; `weights` is "default", "none" or a file of backbone weights.
        Constructing touches no disk; only this loads weights."""
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


def device_of(module: nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for one without any)."""
    first = next(iter(module.parameters()), None)
    return torch.device("cpu") if first is None else first.device


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def network_lock(module: nn.Module) -> threading.RLock:
    """One lock per network object. Grad-CAM (captum) hooks a layer for the length of its
    call, and a hook catches every forward pass through that layer, another thread's too:
    two threads' Grad-CAMs, or a Grad-CAM and a prediction through the same (unfolded)
    network, took each other's activations and failed or mixed their heat maps."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = threading.RLock()
        return lock
