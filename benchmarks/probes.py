"""Frozen ImageNet backbones with a linear head: which layers rank the external set best?

    python benchmarks/probes.py efficientnet-lite0 efficientnet-lite1 efficientnet-lite2

For each backbone (at its own input size), every stage's output is average-pooled for the 5,216
shared training X-rays and the 312 external ones; a logistic regression (balanced classes,
standardised features) is fitted on the training images and scored by AUC on the external set,
for the last stage alone, for single earlier stages, and for several stages concatenated
(multi-layer features). Writes benchmarks/results/probes.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from pneumocxr._malloc import tune_malloc
from pneumocxr.data.decode import decode_all
from pneumocxr.data.index import index_images
from pneumocxr.data.transforms import prepare_batch
from pneumocxr.networks.registry import build_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()


@torch.inference_mode()
def pooled_stages(model, pixels: torch.Tensor) -> list[np.ndarray]:
    """For each backbone stage, its output averaged over space: images x channels."""
    prep, chunks = model.preprocessing(), []
    for start in range(0, len(pixels), 64):
        x, row = prepare_batch(pixels[start : start + 64], prep), []
        for stage in model.stages()[:-1]:
            x = stage(x)
            row.append(x.mean((2, 3)) if x.ndim == 4 else x)
        chunks.append(row)
    return [torch.cat([c[i] for c in chunks]).numpy() for i in range(len(chunks[0]))]


def probe_auc(train, y_train, test, y_test, c: float = 0.01) -> float:
    scaler = StandardScaler().fit(train)
    head = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    head.fit(scaler.transform(train), y_train)
    return float(roc_auc_score(y_test, head.decision_function(scaler.transform(test))))


def main(names: list[str]) -> None:
    tune_malloc()
    train_table, external = index_images(SHARED / "chest_xray"), index_images(SHARED / "external")
    y_train = (train_table["label"] == "PNEUMONIA").to_numpy(int)
    y_ext = (external["label"] == "PNEUMONIA").to_numpy(int)
    results = []
    for name in names:
        model = build_model(name).eval()
        size = model.image_size
        train = pooled_stages(model, decode_all(train_table["path"], size).pixels)
        test = pooled_stages(model, decode_all(external["path"], size).pixels)
        last = len(train) - 1
        sets = {"last stage (pooled 1280)": [last]}
        sets.update({f"stage {i} alone": [i] for i in (last - 1, last - 3, last - 6)})
        sets["multi-layer: last + 3 earlier stages"] = [last, last - 1, last - 3, last - 6]
        sets["multi-layer: every stage"] = list(range(len(train)))
        for label, stages in sets.items():
            auc = probe_auc(
                np.hstack([train[i] for i in stages]), y_train,
                np.hstack([test[i] for i in stages]), y_ext,
            )  # fmt: skip
            results.append({"model": name, "size": size, "features": label, "external_auc": auc})
            print(json.dumps(results[-1]), flush=True)
    from run import save  # benchmarks/run.py: adds the machine and date

    save("probes", {"command": "python benchmarks/probes.py " + " ".join(names), "runs": results})


if __name__ == "__main__":
    main(sys.argv[1:] or ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
