"""Evaluation figures: confusion matrix, ROC (one or many models), reliability diagram."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import ConfusionMatrixDisplay, roc_curve

from pneumocxr.task import CLASS_NAMES


def confusion_figure(metrics: dict, title: str = "Confusion matrix"):
    """Raw counts, like the tutorial's heatmap."""
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ConfusionMatrixDisplay(matrix, display_labels=list(CLASS_NAMES)).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title(f"{title}\n(threshold {metrics['threshold']:.2f})")
    fig.tight_layout()
    return fig


def roc_figure(curves: dict[str, tuple], title: str = "ROC curve"):
    """`curves` maps a name to (labels, probabilities); one line each, AUC in the legend."""
    from sklearn.metrics import roc_auc_score

    fig, ax = plt.subplots(figsize=(5.2, 5))
    for name, (labels, probs) in curves.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, probs)
        ax.plot(fpr, tpr, lw=2, label=f"{name} (AUC = {roc_auc_score(labels, probs):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def reliability_figure(labels, curves: dict, bins: int = 10, title: str = "Reliability diagram"):
    """`curves` maps a name (before / after calibration) to probabilities: observed pneumonia
    frequency per bin of each, with the bin counts of the last."""
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.2, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfectly calibrated")
    for name, probs in curves.items():
        observed, predicted = calibration_curve(labels, probs, n_bins=bins, strategy="uniform")
        ax.plot(predicted, observed, "o-", lw=2, label=name)
    ax.set_ylabel("observed fraction with pneumonia")
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    hist.hist(list(curves.values())[-1], bins=bins, range=(0, 1), color="#4c78a8")
    hist.set_xlabel("predicted P(pneumonia)")
    hist.set_ylabel("images")
    fig.tight_layout()
    return fig


def risk_coverage_figure(curve: dict, title: str = "Risk-coverage"):
    """Accuracy and sensitivity of the answered images against the share answered."""
    rows = curve["curve"]
    coverage = [r["coverage"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.plot(coverage, [r["accuracy"] for r in rows], "o-", lw=2, label="accuracy")
    ax.plot(coverage, [r["sensitivity"] for r in rows], "s-", lw=2, label="sensitivity")
    ax.axvline(0.9, color="grey", ls=":", lw=1, label="10% referred")
    ax.set_xlabel("share of images answered (the most confident first)")
    ax.set_ylabel("of the answered images")
    ax.set_title(title)
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
