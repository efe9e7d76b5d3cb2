"""What the page and `GET /api/model` show about the model: read from model.json defensively.

Only chosen fields leave the server: model.json also records where its data and run folder
were on the training machine, which is nobody's business.
"""

from __future__ import annotations

import math

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.resolve import DEFAULT_MODEL_DIR
from pneumocxr.decision.band import Band
from pneumocxr.display import without_paths as _without_paths

FIGURES = ("n", "auc", "accuracy", "sensitivity", "specificity")


def model_card(loaded: LoadedModel, name: str, threshold: float, band: Band | None = None) -> dict:
    """`band`: the one the server answers with (none when its --threshold lies outside the
    model's band), not model.json's."""
    meta = loaded.meta
    training = _dict(meta.get("training"))
    validation = _dict(meta.get("validation"))
    internal = _figures(validation.get("internal"))
    if internal is None and (internal := _figures(training.get("validation"))):
        internal["data"] = "validation split of the training run"
    card = loaded.path / "MODEL_CARD.md"
    return {
        "name": name,
        "architecture": meta.get("architecture"),
        "run": training.get("run"),
        "default": loaded.path.resolve() == DEFAULT_MODEL_DIR.resolve(),
        "threshold": threshold,
        "threshold_method": _without_paths(meta.get("threshold_method")),
        "image_size": loaded.preprocessing.image_size,
        "gradcam": loaded.predictor.explainable,  # false for an ONNX export
        "created": meta.get("created"),
        "pneumocxr_version": meta.get("pneumocxr_version"),
        "pretrained_from": _dict(meta.get("weights")).get("pretrained_from"),
        "validation": {"internal": internal, "external": _figures(validation.get("external"))},
        "uncertain_band": None if band is None else band.bounds(),
        "calibration": _calibration_text(meta),
        "scope": _scope_text(meta.get("scope")),
        "card_markdown": card.read_text(encoding="utf-8") if card.is_file() else None,
    }


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _figures(entry) -> dict | None:
    """n, AUC, accuracy, sensitivity, specificity and the data's name; None if none is there."""
    if not isinstance(entry, dict):
        return None
    figures = {key: _number(entry.get(key)) for key in FIGURES}
    if all(value is None for value in figures.values()):
        return None
    return {**figures, "data": _data_name(entry.get("data"))}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _data_name(value) -> str | None:
    """A data set's name; of a path, only its last part (where it lived is not shown)."""
    if isinstance(value, dict):
        value = value.get("name") or value.get("path")
    return _without_paths(value)


def _calibration_text(meta: dict) -> str | None:
    """One sentence: how P(pneumonia) was calibrated, and its error before and after."""
    record = _dict(meta.get("calibration"))
    if record.get("method") in (None, "none"):
        return "P(pneumonia) is the network's own sigmoid, not calibrated."
    text = (
        f"P(pneumonia) is calibrated ({record['method']}) on {_without_paths(record.get('fit_on'))}"
    )
    error = _dict(meta.get("calibration_error"))
    before, after = _number(error.get("before")), _number(error.get("after"))
    if before is not None and after is not None:
        text += f"; calibration error (ECE) there {before:.3f} before, {after:.3f} after"
    return text + "." + _tempering_text(meta)


def _tempering_text(meta: dict) -> str:
    gamma = _number(_dict(meta.get("shift_tempering")).get("gamma"))
    if not gamma:
        return ""
    return (f" It is made less sure the further an image lies from the training X-rays (shift "
            f"tempering, gamma {gamma:g}).")  # fmt: skip


def _scope_text(record) -> str | None:
    record = _dict(record)
    if not record:
        return "This model has no scope check: it labels any image."
    features = (
        "its own features"
        if record.get("features") == "own"
        else (f"{record.get('features')} features")
    )
    fitted = _without_paths(record.get("fit_on")) or "its training X-rays"
    return (f"Images unlike its training X-rays are refused as OUT_OF_SCOPE (scope check on "
            f"{features}, fitted on the {fitted}).")  # fmt: skip
