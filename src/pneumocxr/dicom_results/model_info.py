"""What a result says about the model that made it: name, version, weights hash, threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from pneumocxr.errors import PneumoError


@dataclass(frozen=True)
class ModelInfo:
    name: str  # "default (efficientnet-lite0)"
    version: str  # the pneumocxr that made the model, and when
    weights: str  # sha256 of model.safetensors: what the result UIDs derive from
    threshold: float  # on the calibrated P(pneumonia)
    band: tuple[float, float] | None  # UNCERTAIN when low <= P < high
    tempering: float = 0.0  # shift tempering's gamma (decision/shift.py); 0: none

    @classmethod
    def of(cls, model) -> ModelInfo:
        """From an api.Model (its model.json)."""
        meta = model.meta
        made = meta.get("created") or "unknown date"
        release = meta.get("pneumocxr_version") or _installed()
        weights = str(meta.get("weights", {}).get("sha256") or "")
        if not weights:
            raise PneumoError(f"{model.name}: model.json names no weights hash")
        threshold = float(model.threshold)
        if not math.isfinite(threshold):
            raise PneumoError(f"{model.name}: the threshold is not a number")
        return cls(model.name, f"pneumocxr {release}, {made}", weights, threshold,
                   model.uncertain_band, model.loaded.tempering.gamma)  # fmt: skip

    @property
    def short(self) -> str:
        """The weights hash as people quote it."""
        return self.weights[:12]


def _installed() -> str:
    try:
        return version("pneumocxr")
    except PackageNotFoundError:
        return "unknown version"
