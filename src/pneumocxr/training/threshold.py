"""Operating points: choosing the decision threshold, and the figures quoted at it."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def youden_threshold(labels, probabilities) -> float:
    """The probability threshold maximising Youden's J = sensitivity + specificity - 1."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(labels, probabilities)
    best = int(np.argmax(tpr - fpr))
    # roc_curve's first threshold is +inf; clip to a usable probability.
    return float(np.clip(thresholds[best], 0.0, 1.0))


def operating_threshold(
    labels, probabilities, min_sensitivity: float = 0.97, n_boot: int = 1000, seed: int = 0
) -> float:
    """The most accurate threshold that keeps sensitivity >= `min_sensitivity`, stabilised by
    the bootstrap: the median over resamples of the images of each resample's best threshold
    (a threshold fitted on a few hundred images otherwise follows a handful of them)."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probabilities, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        return 0.5
    rng = np.random.default_rng(seed)
    picks = [np.arange(len(labels))] + [
        rng.integers(0, len(labels), len(labels)) for _ in range(n_boot)
    ]
    best = [_best_threshold(labels[i], probs[i], min_sensitivity) for i in picks]
    return float(np.median([b for b in best if b is not None] or [0.5]))


def _best_threshold(labels, probs, min_sensitivity: float) -> float | None:
    if len(np.unique(labels)) < 2:
        return None
    cuts = np.unique(probs)  # call PNEUMONIA when p >= cut
    order = np.argsort(probs)
    sorted_probs, sorted_labels = probs[order], labels[order]
    below = np.searchsorted(sorted_probs, cuts, side="left")  # images called NORMAL
    missed = np.concatenate([[0], np.cumsum(sorted_labels)])[below]  # positives called NORMAL
    true_negatives = below - missed
    positives = labels.sum()
    sensitivity = (positives - missed) / positives
    accuracy = (true_negatives + positives - missed) / len(labels)
    ok = sensitivity >= min_sensitivity
    if not ok.any():
        return None
    return float(cuts[ok][np.argmax(accuracy[ok])])


def summary_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """The figures a model card quotes: AUC, and accuracy, sensitivity and specificity at the
    model's threshold (and accuracy at 0.5, the tutorial's)."""
    labels = np.asarray(labels).astype(int)
    called = np.asarray(probs) >= threshold
    both = len(np.unique(labels)) == 2
    return {
        "n": int(len(labels)),
        "auc": float(roc_auc_score(labels, probs)) if both else float("nan"),
        "threshold": float(threshold),
        "accuracy": float((called == labels).mean()),
        "sensitivity": float(called[labels == 1].mean()) if labels.any() else float("nan"),
        "specificity": float((~called[labels == 0]).mean()) if not labels.all() else float("nan"),
        "accuracy_at_0.5": float(((np.asarray(probs) >= 0.5) == labels).mean()),
    }
