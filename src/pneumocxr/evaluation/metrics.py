"""Binary classification metrics with bootstrap confidence intervals (scikit-learn underneath)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from pneumocxr.task import CLASS_NAMES

CI_METRICS = ("accuracy", "auc", "sensitivity", "specificity")


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def point_metrics(labels, probs, threshold: float = 0.5) -> dict:
    """Metrics of P(pneumonia) `probs` against 0/1 `labels` at `threshold`."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    predicted = (probs >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    both = len(np.unique(labels)) == 2
    return {
        "n": int(len(labels)),
        "prevalence": _ratio(labels.sum(), len(labels)),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(labels, predicted)),
        "auc": float(roc_auc_score(labels, probs)) if both else float("nan"),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "brier": float(brier_score_loss(labels, probs, pos_label=1))
        if len(labels)
        else float("nan"),
        "confusion_matrix": {
            "labels": list(CLASS_NAMES),
            "matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
            "tn": int(tn),
            "fp": int(fp),
            "fn": int(fn),
            "tp": int(tp),
        },
    }


def bootstrap_ci(
    labels, probs, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals (resampling images) for accuracy, AUC, sens., spec."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    samples = {name: [] for name in CI_METRICS}
    n = len(labels)
    # Each image's place among the distinct scores, for `_resampled_auc`.
    levels, level_of = np.unique(probs, return_inverse=True)
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        y, p = labels[pick], probs[pick]
        hit = (p >= threshold).astype(int) == y
        samples["accuracy"].append(hit.mean())
        if y.any():
            samples["sensitivity"].append(hit[y == 1].mean())
        if not y.all():
            samples["specificity"].append(hit[y == 0].mean())
        if 0 < y.sum() < n:
            samples["auc"].append(_resampled_auc(y, level_of[pick], len(levels)))
    return {name: percentile_interval(np.asarray(v), level) for name, v in samples.items()}


def _resampled_auc(y: np.ndarray, level: np.ndarray, levels: int) -> float:
    """roc_auc_score(y, p) from each image's rank `level` among the distinct scores: the share
    of (positive, negative) pairs ranked right, ties counting one half (the area under the
    ROC's trapezoids is exactly that). scikit-learn's input checks took 4 ms per resample:
    `evaluate` on 1,018 images spent 4 s of its 24 in the bootstrap, 0.07 s now."""
    positives = np.bincount(level[y == 1], minlength=levels)
    negatives = np.bincount(level[y == 0], minlength=levels)
    below = np.cumsum(negatives) - negatives
    pairs = float(positives.sum()) * float(negatives.sum())
    return float(np.dot(positives, below + 0.5 * negatives) / pairs)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """The central `level` share of bootstrap replicates (undefined ones left out)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return [float("nan"), float("nan")]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def evaluate_predictions(labels, probs, threshold: float = 0.5, n_boot: int = 1000) -> dict:
    """Everything `metrics.json` holds: point metrics, CIs and scikit-learn's report."""
    labels = np.asarray(labels).astype(int)
    metrics = point_metrics(labels, probs, threshold)
    for name, interval in bootstrap_ci(labels, probs, threshold, n_boot).items():
        metrics[f"{name}_ci"] = interval
    metrics["ci_method"] = f"95% percentile bootstrap over images, {n_boot} resamples"
    predicted = (np.asarray(probs) >= threshold).astype(int)
    metrics["classification_report"] = classification_report(
        labels,
        predicted,
        labels=[0, 1],
        target_names=list(CLASS_NAMES),
        output_dict=True,
        zero_division=0,
    )
    return metrics


def report_text(labels, probs, metrics: dict, title: str = "") -> str:
    """The tutorial's printed classification report, plus the clinical summary with CIs."""
    predicted = (np.asarray(probs) >= metrics["threshold"]).astype(int)
    report = classification_report(
        np.asarray(labels).astype(int),
        predicted,
        labels=[0, 1],
        target_names=list(CLASS_NAMES),
        digits=4,
        zero_division=0,
    )
    cm = metrics["confusion_matrix"]
    lines = [title, ""] if title else []
    lines += [report, f"threshold: {metrics['threshold']:.4f}   images: {metrics['n']}", ""]
    for name in ("accuracy", "auc", "sensitivity", "specificity"):
        low, high = metrics.get(f"{name}_ci", [float("nan")] * 2)
        lines.append(f"{name:12s} {metrics[name]:.4f}  (95% CI {low:.4f}-{high:.4f})")
    for name in ("ppv", "npv", "f1", "brier"):
        lines.append(f"{name:12s} {metrics[name]:.4f}")
    lines += [
        "",
        "confusion matrix (rows: true, columns: predicted)",
        f"{'':12s} {'NORMAL':>10s} {'PNEUMONIA':>10s}",
        f"{'NORMAL':12s} {cm['tn']:>10d} {cm['fp']:>10d}",
        f"{'PNEUMONIA':12s} {cm['fn']:>10d} {cm['tp']:>10d}",
    ]
    return "\n".join(lines) + "\n"


def calibration_metrics(labels, probs, raw_probs=None, n_boot: int = 1000, seed: int = 0):
    """ECE (10 equal-width bins) and Brier score with bootstrap CIs; with `raw_probs`, the same
    for the network's uncalibrated sigmoid."""
    from pneumocxr.decision.calibration import calibration_error

    labels = np.asarray(labels).astype(int)
    result = {}
    for name, values in (("", probs), ("_uncalibrated", raw_probs)):
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64)
        rng = np.random.default_rng(seed)
        picks = [rng.integers(0, len(labels), len(labels)) for _ in range(n_boot)]
        ece = [calibration_error(labels[i], values[i]) for i in picks]
        brier = [np.mean((values[i] - labels[i]) ** 2) for i in picks]
        result[f"ece{name}"] = calibration_error(labels, values)
        result[f"ece{name}_ci"] = percentile_interval(np.asarray(ece))
        result[f"brier{name}"] = float(np.mean((values - labels) ** 2)) if len(labels) else None
        result[f"brier{name}_ci"] = percentile_interval(np.asarray(brier))
    result["ece_bins"] = 10
    return result


def answered_metrics(labels, decisions) -> dict:
    """How the decisions fare: shares out of scope and referred, and accuracy, sensitivity and
    specificity of the images answered NORMAL or PNEUMONIA."""
    labels = np.asarray(labels).astype(int)
    decisions = np.asarray(decisions)
    answered = np.isin(decisions, CLASS_NAMES)
    said = decisions[answered] == "PNEUMONIA"
    truth = labels[answered]
    n = len(labels)
    return {
        "n": n,
        "out_of_scope": _ratio((decisions == "OUT_OF_SCOPE").sum(), n),
        "referred": _ratio((decisions == "UNCERTAIN").sum(), n),
        "answered": _ratio(answered.sum(), n),
        "answered_accuracy": _ratio((said == truth).sum(), len(truth)),
        "answered_sensitivity": _ratio((said & (truth == 1)).sum(), (truth == 1).sum()),
        "answered_specificity": _ratio((~said & (truth == 0)).sum(), (truth == 0).sum()),
    }


COVERAGES = tuple(round(c, 2) for c in np.arange(0.5, 1.0001, 0.05))


def risk_coverage(labels, probs, threshold: float) -> dict:
    """Accuracy and sensitivity of the answered images when only the most confident share is
    answered (confidence: distance of the logit from the threshold's), for each coverage."""
    from pneumocxr.decision.calibration import logit

    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-np.abs(logit(probs) - logit(threshold)), kind="stable")
    hits = ((probs >= threshold).astype(int) == labels)[order]
    positive = labels[order] == 1
    rows = []
    for coverage in COVERAGES:
        k = max(1, int(round(coverage * len(labels))))
        rows.append({
            "coverage": coverage,
            "accuracy": float(hits[:k].mean()),
            "sensitivity": _ratio((hits[:k] & positive[:k]).sum(), positive[:k].sum()),
        })  # fmt: skip
    return {"confidence": "distance of the logit from the threshold's", "curve": rows}
