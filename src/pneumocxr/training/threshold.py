"""Choosing the decision threshold on the validation split."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve


def youden_threshold(labels, probabilities) -> float:
    """The probability threshold maximising Youden's J = sensitivity + specificity - 1."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(labels, probabilities)
    best = int(np.argmax(tpr - fpr))
    # roc_curve's first threshold is +inf; clip to a usable probability.
    return float(np.clip(thresholds[best], 0.0, 1.0))
