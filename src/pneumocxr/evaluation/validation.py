"""What `export` and `ensemble` record in model.json: the scope check, the calibration, the
operating threshold (on the calibrated scale), the UNCERTAIN band, and the internal and
external validation figures quoted at that threshold."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.data.index import index_images
from pneumocxr.errors import PneumoError
from pneumocxr.evaluation.evaluate import splits_source
from pneumocxr.evaluation.inference import predict_paths
from pneumocxr.models.calibration import (
    Calibration,
    calibration_error,
    fit_band,
    fit_calibration,
    logit,
    sigmoid,
)
from pneumocxr.models.io import LoadedModel
from pneumocxr.training.rundir import read_splits
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


def run_split(loaded: LoadedModel, name: str, splits: Path | None = None) -> pd.DataFrame | None:
    """The `name` split (path, label) of the run the model sits in, or of `splits` (a run
    folder or a splits.csv); None when neither is there."""
    try:
        source = _splits_file(Path(splits)) if splits else splits_source(Path(loaded.path))
        table = read_splits(source)
    except PneumoError:
        if splits:
            raise
        return None
    part = table[table["split"] == name][["path", "label"]].reset_index(drop=True)
    return part if len(part) else None


def _splits_file(path: Path) -> Path:
    return path if path.is_file() else splits_source(path)


def scored(loaded: LoadedModel, images: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 labels, network logits) for the readable images of a (path, label) table."""
    found, _ = predict_paths(loaded, list(images["path"]))
    if found.empty:
        raise PneumoError("none of the images could be read")
    table = images.merge(found[["path", "logit"]], on="path")
    return (table["label"] == "PNEUMONIA").to_numpy(int), table["logit"].to_numpy()


class _Scores:
    """`scored` once per set of images: the validation split serves calibration and the
    internal figures, and one folder may be --calibrate-on, --threshold-on and --external."""

    def __init__(self, loaded: LoadedModel):
        self.loaded, self.done = loaded, {}

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Of a (path, label) table or a labelled folder."""
        key = tuple(images["path"]) if isinstance(images, pd.DataFrame) else Path(images).resolve()
        if key not in self.done:
            table = images if isinstance(images, pd.DataFrame) else index_images(images)
            self.done[key] = scored(self.loaded, table)
        return self.done[key]


def model_card_figures(loaded: LoadedModel, card: Card) -> dict:
    """model.json entries: calibration, threshold (calibrated scale) and its logit, the
    UNCERTAIN band and validation (internal: the run's validation split; external: the
    folder `card.external`)."""
    internal = run_split(loaded, "val", card.splits_from)
    score = _Scores(loaded)
    calibration, calib_set = _calibration(loaded, card, internal, score)
    scores = {}
    if internal is not None:
        scores["internal"] = (*score(internal), "val split of the model's run")
    if card.external is not None:
        scores["external"] = (*score(card.external), _name(card.external))
    cut_logit, method = _threshold_logit(loaded, card, calibration, scores, score)
    cut = float(calibration.apply(cut_logit))
    entries = {
        "calibration": calibration.to_json(),
        "threshold": cut,
        "threshold_logit": cut_logit,
        "threshold_method": method,
    }
    entries.update(_band(loaded, card, calibration, calib_set, cut))
    if calib_set is not None:
        labels, logits, name = calib_set
        entries["calibration_error"] = {
            "data": name,
            "before": calibration_error(labels, sigmoid(logits)),
            "after": calibration_error(labels, calibration.apply(logits)),
        }
    entries["validation"] = _validation(loaded, card, calibration, cut, scores)
    return entries


def _validation(loaded, card: Card, calibration: Calibration, cut: float, scores: dict) -> dict:
    validation = dict(loaded.meta.get("validation") or {})
    fitted = {_name(p) for p in (card.threshold_on, card.calibrate_on) if p is not None}
    for name, (labels, logits, data) in scores.items():
        note = f"{data} (used to fit the threshold or calibration)" if data in fitted else data
        probs = calibration.apply(logits)
        validation[name] = {**summary_metrics(labels, probs, cut), "data": note}
    return validation


def _calibration(loaded: LoadedModel, card: Card, internal, score: _Scores):
    """(calibration, (labels, logits, name) of the set it is fitted on, or None)."""
    keep = card.calibrate_on is None and card.calibration is None and "calibration" in loaded.meta
    if card.calibrate_on is not None:
        labels, logits = score(card.calibrate_on)
        calib_set = (labels, logits, f"{_name(card.calibrate_on)} ({len(labels)} images)")
    elif internal is not None:
        labels, logits = score(internal)
        calib_set = (labels, logits, f"val split of the model's run ({len(labels)} images)")
    else:
        calib_set = None
    if keep or calib_set is None:
        if card.calibration not in (None, "none") and calib_set is None:
            raise PneumoError("calibration needs a labelled set: give --calibrate-on DIR")
        return loaded.calibration, calib_set
    labels, logits, name = calib_set
    return fit_calibration(logits, labels, card.calibration or "platt", name), calib_set


def _threshold_logit(loaded, card: Card, calibration: Calibration, scores, score: _Scores):
    """The operating threshold as a network logit (it moves with the calibration)."""
    method = card.threshold or "model"
    if method == "model":
        return _model_threshold_logit(loaded), loaded.meta.get("threshold_method", "as exported")
    if method == "operating":
        if card.threshold_on is None:
            raise PneumoError("--threshold operating needs --threshold-on DIR")
        labels, logits = score(card.threshold_on)
        cut = operating_threshold(labels, calibration.apply(logits), card.min_sensitivity)
        return calibration.logit_for(cut), (
            f"most accurate threshold with sensitivity >= {card.min_sensitivity:g} on "
            f"{_name(card.threshold_on)} ({len(labels)} images; median of 1000 bootstrap "
            "resamples)"
        )
    if method == "youden":
        if "internal" not in scores:
            raise PneumoError("--threshold youden needs the model's run folder (its val split)")
        labels, logits, _ = scores["internal"]
        cut = youden_threshold(labels, calibration.apply(logits))
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


def _model_threshold_logit(loaded: LoadedModel) -> float:
    """The model's own threshold as a logit; models exported before calibration existed
    stored it on the network's own sigmoid scale."""
    if "threshold_logit" in loaded.meta:
        return float(loaded.meta["threshold_logit"])
    if "calibration" in loaded.meta:
        return loaded.calibration.logit_for(loaded.threshold)
    return float(logit(loaded.threshold))


def _band(loaded, card: Card, calibration: Calibration, calib_set, cut: float) -> dict:
    """The UNCERTAIN band, refitted on the calibration set (docs/VALIDATION.md's rule) unless
    nothing changed; dropped, with a warning, when it no longer fits and cannot be refitted."""
    budget = card.refer_at_most
    if budget is None:
        budget = (loaded.meta.get("uncertain") or {}).get("budget", 0.08)
    if budget == 0:
        return {"uncertain": None}
    unchanged = calibration == loaded.calibration and cut == loaded.threshold
    if unchanged and card.refer_at_most is None and "uncertain" in loaded.meta:
        return {"uncertain": loaded.meta["uncertain"]}
    if calib_set is None:
        log.warning("no labelled set to fit the UNCERTAIN band on (--calibrate-on DIR): none")
        return {"uncertain": None}
    labels, logits, name = calib_set
    band = fit_band(calibration.apply(logits), labels, cut, budget, name)
    return {"uncertain": band.to_json()}


def _name(folder) -> str:
    """A data folder by its name: model.json holds no path of the machine that made it."""
    return Path(folder).resolve().name
