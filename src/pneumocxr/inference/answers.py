"""An answer and how it is decided: `Prediction` (the contract of `predict --json`,
`/api/predict` and the API), `Settings` (threshold, band, scope check) and `answers`, the one
path from logits and scope scores to labels."""

from __future__ import annotations

from dataclasses import dataclass

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.decision.band import Band
from pneumocxr.decision.calibration import sigmoid
from pneumocxr.decision.decide import decide
from pneumocxr.display import display_path
from pneumocxr.errors import PneumoError


@dataclass
class Prediction:
    """One image's answer: the contract of `predict --json`, `/api/predict` and the API.

    `label` is NORMAL, PNEUMONIA, UNCERTAIN (refer to a person) or OUT_OF_SCOPE (not an image
    the model knows; `reason` says why); `p_pneumonia` is calibrated; `scope_score` is above 1
    for images unlike the model's training X-rays (None with the scope check off)."""

    path: str | None  # None for an image given in memory (a PIL image, an array)
    label: str
    p_pneumonia: float
    in_scope: bool
    scope_score: float | None
    reason: str = ""
    logit: float = float("nan")  # the network's own output, before calibration
    threshold_used: float = 0.5

    @property
    def p_raw(self) -> float:
        """The network's own sigmoid, before calibration."""
        return float(sigmoid(self.logit))

    @property
    def predicted(self) -> str:
        """The plain thresholded label, whatever the scope check and the band say."""
        return "PNEUMONIA" if self.p_pneumonia >= self.threshold_used else "NORMAL"


ANSWER_COLUMNS = ["path", "label", "p_pneumonia", "in_scope", "scope_score", "reason"]


@dataclass
class Settings:
    """How answers are decided: the threshold (calibrated scale), the UNCERTAIN band, and
    whether the scope check runs."""

    threshold: float
    band: Band | None
    scope_check: bool = True

    @classmethod
    def of(cls, loaded: LoadedModel, threshold=None, scope_check: bool = True) -> Settings:
        if not isinstance(scope_check, bool):  # "off" would be true: every check would run
            raise PneumoError(f"scope_check must be True or False, got {scope_check!r:.60}")
        cut = choose_threshold(threshold, loaded)
        band = loaded.band
        if band is not None and not band.low <= cut <= band.high:
            band = None  # a threshold of the user's own: no band fitted around it
        return cls(cut, band, scope_check)


def answers(
    loaded: LoadedModel, names, logits, scopes, notes, settings: Settings, differs=None
) -> list[Prediction]:
    """Calibrate, check scope, decide: the one path from logits to labels. `differs` maps an
    image's index to what its pixels show unlike the training X-rays (scope.differences)."""
    probs = loaded.calibration.apply(logits)
    if settings.scope_check:  # less sure with distance from the training X-rays
        probs = loaded.tempering.apply(probs, scopes, loaded.threshold)
    differs = differs or {}
    made = []
    for i, (name, p) in enumerate(zip(names, probs)):
        note = notes[i] if settings.scope_check else None
        score = None if scopes is None else float(scopes[i])
        in_scope = note is None and (score is None or score <= 1.0)
        label = decide(float(p), in_scope, settings.threshold, settings.band)
        reason = _reason(label, note, score, differs.get(i))
        made.append(Prediction(name, label, float(p), in_scope, score, reason, float(logits[i]),
                               settings.threshold))  # fmt: skip
    return made


def _reason(label: str, note: str | None, score: float | None, differs: str | None) -> str:
    if label == "OUT_OF_SCOPE":
        return note or (
            f"unlike the chest X-rays this model was trained on (scope score {score:.2f}, "
            "refused above 1)" + (f": {differs}" if differs else "")
        )
    if label == "UNCERTAIN":
        return "uncertain: have a person look (between the model's referral limits)"
    return ""


def record_of(answer: Prediction) -> dict:
    """An answer's ANSWER_COLUMNS, full precision (a row of `predict --csv`)."""
    return {c: getattr(answer, c) for c in ANSWER_COLUMNS}


def answer_record(record: dict) -> dict:
    """`predict --json`'s line for a row: the path escaped as in the text output (valid UTF-8
    for jq), P to 6 decimals, the scope score to 4."""
    score = record["scope_score"]
    return {
        "path": display_path(record["path"]),
        "label": record["label"],
        "p_pneumonia": round(record["p_pneumonia"], 6),
        "in_scope": record["in_scope"],
        "scope_score": None if score is None else round(score, 4),
        "reason": record["reason"],
    }


def answers_table(found: list[Prediction]):
    import pandas as pd

    rows = [{**{c: getattr(a, c) for c in ANSWER_COLUMNS}, "predicted": a.predicted,
             "p_raw": a.p_raw, "logit": a.logit} for a in found]  # fmt: skip
    return pd.DataFrame(rows, columns=[*ANSWER_COLUMNS, "predicted", "p_raw", "logit"])


def choose_threshold(value: str | float | None, loaded: LoadedModel) -> float:
    """The model's operating threshold on the calibrated scale (model.json's `threshold`) by
    default or with "model"; or a number (also on the calibrated scale)."""
    if isinstance(value, str) and value in ("", "model") or value is None:
        return loaded.threshold
    try:
        threshold = float(value)
    except (TypeError, ValueError):  # a list, a dict: not a threshold either
        raise PneumoError(f"--threshold must be a number or 'model', got {value!r:.60}") from None
    if not 0.0 <= threshold <= 1.0:
        raise PneumoError(f"--threshold must be between 0 and 1, got {threshold}")
    return threshold


def label_for(prob: float, threshold: float) -> str:
    return "PNEUMONIA" if prob >= threshold else "NORMAL"
