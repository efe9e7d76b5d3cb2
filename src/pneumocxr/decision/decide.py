"""The one place a label is decided, after the model: from the calibrated P(pneumonia), the
scope check's verdict, the operating threshold and the UNCERTAIN band (as MONAI's
`AsDiscrete` and scikit-learn's `FixedThresholdClassifier` decide after a model)."""

from __future__ import annotations

from pneumocxr.decision.band import Band
from pneumocxr.task import OUT_OF_SCOPE, UNCERTAIN


def decide(p: float, in_scope: bool, threshold: float, band: Band | None) -> str:
    """The one place a label is decided: OUT_OF_SCOPE, UNCERTAIN, PNEUMONIA or NORMAL."""
    if not in_scope:
        return OUT_OF_SCOPE
    if band is not None and band.low <= p < band.high:
        return UNCERTAIN
    return "PNEUMONIA" if p >= threshold else "NORMAL"
