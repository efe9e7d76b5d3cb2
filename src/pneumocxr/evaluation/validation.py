"""The figures a model carries in model.json: internal and external validation, and the
operating threshold they are quoted at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.data.index import index_images
from pneumocxr.errors import PneumoError
from pneumocxr.evaluation.evaluate import splits_source
from pneumocxr.evaluation.inference import predict_paths
from pneumocxr.models.io import LoadedModel
from pneumocxr.training.rundir import read_splits
from pneumocxr.training.threshold import operating_threshold, summary_metrics, youden_threshold


def origin_folders(loaded: LoadedModel) -> list[Path]:
    """The folders a model was exported from (an ensemble's: its members')."""
    if loaded.meta.get("members"):
        return [Path(m.get("from", "")) for m in loaded.meta["members"]]
    return [Path(loaded.meta.get("exported_from") or loaded.path)]


def internal_validation_images(loaded: LoadedModel) -> pd.DataFrame | None:
    """The validation split of the run(s) the model comes from, when they share one."""
    splits = []
    for folder in origin_folders(loaded):
        try:
            table = read_splits(splits_source(folder))
        except PneumoError:  # not exported from a run folder, or the run was moved
            return None
        splits.append(table[table["split"] == "val"][["path", "label"]].reset_index(drop=True))
    first = splits[0]
    same = all(set(s["path"]) == set(first["path"]) for s in splits[1:])
    return first if same and len(first) else None


def scored(loaded: LoadedModel, images: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 labels, P(pneumonia)) for the readable images of a (path, label) table."""
    probs, _ = predict_paths(loaded, list(images["path"]))
    if probs.empty:
        raise PneumoError("none of the validation images could be read")
    table = images.merge(probs, on="path")
    return (table["label"] == "PNEUMONIA").to_numpy(int), table["p_pneumonia"].to_numpy()


def model_card_figures(
    loaded: LoadedModel,
    threshold="youden",
    threshold_on=None,
    min_sensitivity: float = 0.97,
    external=None,
) -> dict:
    """model.json entries: `threshold`, `threshold_method` and `validation` (internal: the
    validation split of the model's run; external: the folder `external`).

    `threshold`: a number, "model" (keep the model's), "youden" (Youden's J on internal
    validation) or "operating" (the
    most accurate threshold with sensitivity >= `min_sensitivity` on the folder `threshold_on`,
    bootstrap-stabilised)."""
    internal = internal_validation_images(loaded)
    scores = {}
    if internal is not None:
        scores["internal"] = (*scored(loaded, internal), "val split of the model's run")
    if external is not None:
        scores["external"] = (*scored(loaded, index_images(external)), str(Path(external)))
    cut, method = _threshold(loaded, threshold, threshold_on, min_sensitivity, scores)
    for name, (labels, probs, note) in scores.items():
        if threshold_on is not None and Path(threshold_on).resolve() == Path(note).resolve():
            scores[name] = (labels, probs, f"{note} (the threshold was chosen on it)")
    validation = {
        name: {**summary_metrics(labels, probs, cut), "data": note}
        for name, (labels, probs, note) in scores.items()
    }
    return {"threshold": cut, "threshold_method": method, "validation": validation}


def _threshold(loaded, threshold, threshold_on, min_sensitivity, scores) -> tuple[float, str]:
    if threshold == "operating":
        if threshold_on is None:
            raise PneumoError("--threshold operating needs --threshold-on DIR")
        labels, probs = scored(loaded, index_images(threshold_on))
        cut = operating_threshold(labels, probs, min_sensitivity)
        return cut, (
            f"most accurate threshold with sensitivity >= {min_sensitivity:g} on "
            f"{Path(threshold_on)} ({len(labels)} images; median of 1000 bootstrap resamples)"
        )
    if threshold == "model" or (threshold == "youden" and "internal" not in scores):
        return loaded.threshold, loaded.meta.get("threshold_method", "as exported")
    if threshold == "youden":
        labels, probs, _ = scores["internal"]
        return youden_threshold(labels, probs), "Youden's J on the validation split"
    try:
        cut = float(threshold)
    except (TypeError, ValueError):
        raise PneumoError(
            f"--threshold must be a number, model, youden or operating, got {threshold!r}"
        ) from None
    if not 0 <= cut <= 1:
        raise PneumoError(f"--threshold must be between 0 and 1, got {cut}")
    return cut, "set by hand"
