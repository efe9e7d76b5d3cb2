"""The shift stress test: AUC and accuracy under acquisition changes at five severities each.

Images are decoded once at the model's input size; every corruption of data/corruptions.py is
applied at severities 1-5 to the decoded uint8 images (MedMNIST-C corrupts its 224-pixel
images the same way), and the model scores each corrupted copy. The summary figure is the
mean AUC over all corruptions and severities (mean-corruption AUC), beside the clean AUC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.data.corruptions import CORRUPTIONS, MEDMNIST_C
from pneumocxr.data.decode import decode_all, unreadable_error
from pneumocxr.errors import PneumoError
from pneumocxr.inference.predict import predict_images

log = logging.getLogger("pneumocxr")
SEVERITIES = (1, 2, 3, 4, 5)


@dataclass
class StressResult:
    table: pd.DataFrame  # corruption, severity, auc, accuracy, sensitivity, specificity
    clean: dict
    n: int

    @property
    def mean_corruption_auc(self) -> float:
        return float(self.table["auc"].mean())

    def summary(self) -> dict:
        medmnist = self.table[self.table["corruption"].isin(MEDMNIST_C)]
        worst = self.table.loc[self.table["auc"].idxmin()]
        return {
            "n": self.n,
            "clean_auc": self.clean["auc"],
            "clean_accuracy": self.clean["accuracy"],
            "mean_corruption_auc": self.mean_corruption_auc,
            "mean_corruption_auc_medmnist_c": float(medmnist["auc"].mean()),
            "mean_corruption_accuracy": float(self.table["accuracy"].mean()),
            "worst": {k: _plain(worst[k]) for k in ("corruption", "severity", "auc")},
        }


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def score(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    called = probs >= threshold
    both = len(np.unique(labels)) == 2
    return {
        "auc": float(roc_auc_score(labels, probs)) if both else float("nan"),
        "accuracy": float((called == labels).mean()),
        "sensitivity": float(called[labels == 1].mean()) if labels.any() else float("nan"),
        "specificity": float((~called[labels == 0]).mean()) if not labels.all() else float("nan"),
    }


def stress_test(
    loaded: LoadedModel,
    images: pd.DataFrame,
    threshold: float,
    corruptions=None,
    seed: int = 0,
    progress=None,
    strict: bool = False,
) -> StressResult:
    """Score `loaded` on `images` (path, label) clean and under every corruption."""
    names = list(corruptions or CORRUPTIONS)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise PneumoError(
            f"unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}"
        )
    decoded = decode_all(images["path"], loaded.preprocessing.image_size)
    if decoded.failures and strict:
        raise unreadable_error(decoded.failures)
    for _, reason in decoded.failures:
        log.warning("skipped %s", reason)
    labels = (images["label"][decoded.ok] == "PNEUMONIA").to_numpy(dtype=int)
    if len(np.unique(labels)) < 2:
        raise PneumoError("the stress test needs images of both classes")
    clean = score(labels, predict_images(loaded, decoded.pixels), threshold)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for name in names:
        for severity in SEVERITIES:
            corrupted = CORRUPTIONS[name](decoded.pixels, severity, generator)
            probs = predict_images(loaded, corrupted)
            rows.append(
                {"corruption": name, "severity": severity, **score(labels, probs, threshold)}
            )
            if progress:
                progress(rows[-1])
    return StressResult(pd.DataFrame(rows), clean, int(len(labels)))


def stress_markdown(result: StressResult) -> str:
    """One row per corruption: AUC at severities 1-5 and their mean."""
    wide = result.table.pivot(index="corruption", columns="severity", values="auc")
    wide = wide.reindex([c for c in CORRUPTIONS if c in wide.index])
    lines = [
        "| corruption | " + " | ".join(f"AUC s{s}" for s in SEVERITIES) + " | mean |",
        "|---" * (len(SEVERITIES) + 2) + "|",
        f"| clean | {result.clean['auc']:.4f} |" + " |" * len(SEVERITIES),
    ]
    for name, row in wide.iterrows():
        cells = " | ".join(f"{v:.4f}" for v in row)
        lines.append(f"| {name} | {cells} | {row.mean():.4f} |")
    summary = result.summary()
    lines += [
        "",
        f"mean-corruption AUC {summary['mean_corruption_auc']:.4f} (all {len(wide)} corruptions); "
        f"{summary['mean_corruption_auc_medmnist_c']:.4f} over MedMNIST-C's 13; clean "
        f"{summary['clean_auc']:.4f}; {result.n} images",
    ]
    return "\n".join(lines) + "\n"


def stress_figure(result: StressResult, title: str = "Stress test"):
    """AUC against severity, one line per corruption, the clean AUC as a dashed line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5))
    cmap = plt.get_cmap("tab20")
    for i, (name, part) in enumerate(result.table.groupby("corruption", sort=False)):
        style = "--" if name not in MEDMNIST_C else "-"
        ax.plot(part["severity"], part["auc"], style, marker="o", ms=3, label=name, color=cmap(i))
    ax.axhline(result.clean["auc"], color="black", ls=":", lw=1.5, label="clean")
    ax.set_xticks(SEVERITIES)
    ax.set_xlabel("severity")
    ax.set_ylabel("AUC")
    ax.set_title(f"{title}: mean-corruption AUC {result.mean_corruption_auc:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    return fig
