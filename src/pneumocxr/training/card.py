"""The one model-card builder: what model.json records of a model's decision and figures (the
calibration, the operating threshold on the calibrated scale, the UNCERTAIN band, the
calibration error, and the internal and external validation figures at that threshold).

`train` calls it at the end of a run (on its validation split), `export` and `ensemble` to
refit what the user asks for; each scores its images its own way (decoded pixels or files)
and passes labels and logits here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pneumocxr.decision.band import fit_band
from pneumocxr.decision.calibration import (
    Calibration,
    calibration_error,
    fit_calibration,
    logit,
    sigmoid,
)
from pneumocxr.errors import PneumoError
from pneumocxr.training.threshold import operating_threshold, summary_metrics, youden_threshold

log = logging.getLogger("pneumocxr")


@dataclass
class Card:
    """export's and ensemble's options for the recorded figures (None: keep the model's)."""

    threshold: str | None = None  # a number (calibrated scale), model, youden or operating
    threshold_on: Path | None = None
    min_sensitivity: float = 0.97
    external: Path | None = None
    calibrate_on: Path | None = None
    calibration: str | None = None  # method; None keeps the model's (platt when refitting)
    refer_at_most: float | None = None
    splits_from: Path | None = None  # the model's run folder or splits.csv (train, val)
    temper_on: Path | None = None  # labelled images to fit shift tempering on

    def asks(self) -> bool:
        """Does it name anything to refit?"""
        asked = (self.threshold, self.external, self.calibrate_on, self.calibration,
                 self.refer_at_most, self.splits_from, self.temper_on)  # fmt: skip
        return any(a is not None for a in asked)


@dataclass
class Scored:
    """A labelled set scored by the model: 0/1 labels, network logits, and its name as
    model.json records it."""

    labels: np.ndarray
    logits: np.ndarray
    name: str


def model_card(card: Card, previous: dict, calibration: Calibration, *, internal=None,
               external=None, calibrate_on=None, threshold_on=None,
               lenient: bool = False) -> dict:  # fmt: skip
    """model.json entries. `previous` is the model's model.json so far and `calibration` its
    calibration (kept unless the card asks for another); `internal` (the run's validation
    split) and `external` are reported, `calibrate_on` fits the calibration and the band,
    `threshold_on` the `operating` threshold. With `lenient`, a calibration that cannot be
    fitted leaves P uncalibrated, with a warning, instead of failing."""
    calibration = _calibration(card, previous, calibration, calibrate_on, lenient)
    cut_logit, method = _threshold_logit(card, previous, calibration, internal, threshold_on)
    cut = float(calibration.apply(cut_logit))
    entries = {
        "calibration": calibration.to_json(),
        "threshold": cut,
        "threshold_logit": cut_logit,
        "threshold_method": method,
    }
    entries.update(_band(card, previous, calibration, calibrate_on, cut))
    if calibrate_on is not None:
        entries["calibration_error"] = {
            "data": calibrate_on.name,
            "before": calibration_error(calibrate_on.labels, sigmoid(calibrate_on.logits)),
            "after": calibration_error(calibrate_on.labels, calibration.apply(calibrate_on.logits)),
        }
    validation = dict(previous.get("validation") or {})
    for key, scored in (("internal", internal), ("external", external)):
        if scored is not None:
            probs = calibration.apply(scored.logits)
            validation[key] = {**summary_metrics(scored.labels, probs, cut), "data": scored.name}
    entries["validation"] = validation
    return entries


def _calibration(card: Card, previous: dict, current: Calibration, calibrate_on,
                 lenient: bool) -> Calibration:  # fmt: skip
    keep = card.calibrate_on is None and card.calibration is None and "calibration" in previous
    if keep or calibrate_on is None:
        if card.calibration not in (None, "none") and calibrate_on is None:
            raise PneumoError("calibration needs a labelled set: give --calibrate-on DIR")
        return current
    method, data = card.calibration or "platt", calibrate_on
    try:
        return fit_calibration(data.logits, data.labels, method, data.name)
    except PneumoError as err:
        if not lenient:
            raise
        # a model that ranks the set backwards (or sees one class only): exported anyway
        log.warning("%s; P(pneumonia) is left uncalibrated", err)
        return Calibration(fit_on=data.name, n=len(data.logits))


def _threshold_logit(card: Card, previous: dict, calibration: Calibration, internal,
                     threshold_on):  # fmt: skip
    """The operating threshold as a network logit (it moves with the calibration)."""
    method = card.threshold or "model"
    if method == "model":
        return _model_threshold_logit(previous), previous.get("threshold_method", "as exported")
    if method == "operating":
        if threshold_on is None:
            raise PneumoError("--threshold operating needs --threshold-on DIR")
        probs = calibration.apply(threshold_on.logits)
        cut = operating_threshold(threshold_on.labels, probs, card.min_sensitivity)
        return calibration.logit_for(cut), (
            f"most accurate threshold with sensitivity >= {card.min_sensitivity:g} on "
            f"{threshold_on.name} ({len(threshold_on.labels)} images; median of 1000 "
            "bootstrap resamples)"
        )
    if method == "youden":
        if internal is None:
            raise PneumoError("--threshold youden needs the model's run folder (its val split)")
        cut = youden_threshold(internal.labels, calibration.apply(internal.logits))
        return calibration.logit_for(cut), "Youden's J on the validation split"
    try:
        cut = float(method)
    except (TypeError, ValueError):
        raise PneumoError(
            f"--threshold must be a number, model, youden or operating, got {method!r}"
        ) from None
    if not 0 <= cut <= 1:
        raise PneumoError(f"--threshold must be between 0 and 1, got {cut}")
    return calibration.logit_for(cut), "set by hand (calibrated scale)"


def _model_threshold_logit(previous: dict) -> float:
    """The model's own threshold as a logit; models exported before calibration existed
    stored it on the network's own sigmoid scale."""
    if "threshold_logit" in previous:
        return float(previous["threshold_logit"])
    threshold = float(previous.get("threshold", 0.5))
    if "calibration" in previous:
        return Calibration.from_json(previous.get("calibration")).logit_for(threshold)
    return float(logit(threshold))


def _band(card: Card, previous: dict, calibration: Calibration, calibrate_on, cut: float):
    """The UNCERTAIN band, refitted on the calibration set (docs/VALIDATION.md's rule) unless
    nothing changed; dropped, with a warning, when it no longer fits and cannot be refitted."""
    budget = card.refer_at_most
    if budget is None:
        budget = (previous.get("uncertain") or {}).get("budget", 0.08)
    if budget == 0:
        return {"uncertain": None}
    unchanged = calibration == _previous_calibration(previous) and cut == previous.get(
        "threshold", 0.5
    )
    if unchanged and card.refer_at_most is None and "uncertain" in previous:
        return {"uncertain": previous["uncertain"]}
    if calibrate_on is None:
        log.warning("no labelled set to fit the UNCERTAIN band on (--calibrate-on DIR): none")
        return {"uncertain": None}
    probs = calibration.apply(calibrate_on.logits)
    band = fit_band(probs, calibrate_on.labels, cut, budget, calibrate_on.name)
    return {"uncertain": band.to_json()}


def _previous_calibration(previous: dict) -> Calibration:
    return Calibration.from_json(previous.get("calibration"))
