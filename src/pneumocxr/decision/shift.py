"""Less sure the further an image lies from the training X-rays: shift tempering.

A model can be confidently wrong on a radiograph that is altered but still in scope: cropped,
lower in contrast, saved as JPEG with a border. On the shipped model, a 90% crop turned a
referred NORMAL child (P 0.37) into PNEUMONIA at P 0.94. The scope score measures how far an
image lies from the training X-rays (1 = the refusal limit), so the calibrated P is pulled
towards the operating threshold as that distance grows:

    logit(P') = c + (logit(P) - c) / (1 + gamma * max(0, scope score)),  c = logit(threshold)

It never changes which side of the threshold an answer is on; it makes answers on unusual
images less confident, so more of them fall in the UNCERTAIN band and go to a person.
`gamma` is fitted on labelled images nothing was trained on, altered as
`data.alterations.TEMPERING` names: the smallest `gamma` of `GRID` with which no altered image
whose untouched answer was right or referred is answered confidently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pneumocxr.decision.band import Band
from pneumocxr.decision.calibration import logit, sigmoid
from pneumocxr.decision.decide import decide
from pneumocxr.errors import PneumoError
from pneumocxr.task import CONFIDENT, OUT_OF_SCOPE, UNCERTAIN

GRID = tuple(i / 4 for i in range(13))  # 0, 0.25, ..., 3


@dataclass(frozen=True)
class ShiftTempering:
    """`gamma` 0 leaves P as calibrated."""

    gamma: float = 0.0
    fit_on: str = ""
    n: int = 0
    alterations: tuple[str, ...] = ()
    met: bool = True  # False: no gamma of the grid met the rule on `fit_on`
    # on `fit_on`: altered images answered confidently wrong, right or referred untouched
    wrong_untempered: int = 0
    wrong_tempered: int = 0

    def apply(self, probs, scopes, threshold: float) -> np.ndarray:
        """P tempered by each image's scope score (None or NaN: not tempered)."""
        probs = np.asarray(probs, dtype=np.float64)
        if self.gamma == 0 or scopes is None:
            return probs
        distance = np.nan_to_num(np.asarray(scopes, dtype=np.float64), nan=0.0)
        centre = float(logit(threshold))
        shrink = 1 + self.gamma * np.clip(distance, 0, None)
        return sigmoid(centre + (logit(probs) - centre) / shrink)

    def to_json(self) -> dict:
        return {"gamma": self.gamma, "fit_on": self.fit_on, "n": self.n,
                "alterations": list(self.alterations), "met": self.met,
                "confidently_wrong_altered": {"untempered": self.wrong_untempered,
                                              "tempered": self.wrong_tempered}}  # fmt: skip

    @classmethod
    def from_json(cls, record: dict | None) -> ShiftTempering:
        if record is None:
            return cls()
        gamma = record.get("gamma") if isinstance(record, dict) else None
        if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not (
            0 <= gamma <= 100
        ):
            raise PneumoError("shift tempering record")
        counts = record.get("confidently_wrong_altered") or {}
        try:
            return cls(
                float(gamma), str(record.get("fit_on", "")), int(record.get("n", 0)),
                tuple(record.get("alterations", ())), bool(record.get("met", True)),
                int(counts.get("untempered", 0)), int(counts.get("tempered", 0)),
            )  # fmt: skip
        except (AttributeError, TypeError, ValueError):
            raise PneumoError("shift tempering record") from None


@dataclass
class Scores:
    """One set of images as a model answered it: calibrated P and scope scores (NaN for an
    image the scope check refused before scoring)."""

    probs: np.ndarray
    scopes: np.ndarray


def fit_tempering(labels, untouched: Scores, altered: dict[str, Scores], threshold: float,
                  band: Band | None, fit_on: str = "") -> ShiftTempering:  # fmt: skip
    """The smallest gamma of GRID with which no altered image is answered confidently wrong
    unless its untouched version was answered wrongly."""
    truth = np.asarray(labels, dtype=bool)

    def wrong(gamma: float) -> int:
        made = ShiftTempering(gamma)
        return confidently_wrong_new(made, truth, untouched, altered, threshold, band)

    found = next((g for g in GRID if wrong(g) == 0), None)
    gamma, after = (found, 0) if found is not None else (GRID[-1], wrong(GRID[-1]))
    return ShiftTempering(gamma, fit_on, len(truth), tuple(altered), found is not None,
                          wrong(0.0), after)  # fmt: skip


def confidently_wrong_new(tempering: ShiftTempering, truth, untouched: Scores,
                          altered: dict[str, Scores], threshold: float, band) -> int:  # fmt: skip
    """How many altered images are answered confidently wrong whose untouched version was
    answered right or referred."""
    _, wrong_before = _answers(tempering, truth, untouched, threshold, band)
    kept = ~wrong_before
    return sum(
        int((_answers(tempering, truth, scores, threshold, band)[0] & kept).sum())
        for scores in altered.values()
    )


def _answers(tempering, truth, scores: Scores, threshold, band):
    """(confidently wrong, wrong) for each image: refused and UNCERTAIN are neither."""
    probs = tempering.apply(scores.probs, scores.scopes, threshold)
    in_scope = ~(np.nan_to_num(scores.scopes, nan=np.inf) > 1)
    labels = [decide(float(p), bool(s), threshold, band) for p, s in zip(probs, in_scope)]
    said = np.array([label == "PNEUMONIA" for label in labels])
    answered = np.array([label not in (UNCERTAIN, OUT_OF_SCOPE) for label in labels])
    wrong = answered & (said != truth)
    sure = np.where(said, probs >= CONFIDENT, probs <= 1 - CONFIDENT)
    return wrong & sure, wrong
