"""A loaded model: its predictor, its model.json and where it lies; the decision's parameters
(threshold, calibration, UNCERTAIN band) read from model.json."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.decision.band import Band
from pneumocxr.decision.calibration import Calibration
from pneumocxr.decision.shift import ShiftTempering
from pneumocxr.predictors.base import Predictor
from pneumocxr.predictors.single import as_predictor


@dataclass
class LoadedModel:
    predictor: Predictor
    meta: dict
    path: Path

    def __post_init__(self):
        self.predictor = as_predictor(self.predictor)  # a bare network: no scope check

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_json(self.meta["preprocessing"])

    @property
    def threshold(self) -> float:
        """The operating threshold, on the calibrated scale."""
        return float(self.meta.get("threshold", 0.5))

    @cached_property
    def calibration(self) -> Calibration:
        return Calibration.from_json(self.meta.get("calibration"))

    @cached_property
    def tempering(self) -> ShiftTempering:
        """How P is made less sure with distance from the training X-rays (decision.shift)."""
        return ShiftTempering.from_json(self.meta.get("shift_tempering"))

    @cached_property
    def band(self) -> Band | None:
        return Band.from_json(self.meta.get("uncertain"), self.threshold)

    @property
    def has_scope(self) -> bool:
        return self.predictor.scoped
