"""Does trimming borders let anything that is not a chest X-ray through the scope check?

    python benchmarks/border_outside.py

Builds the outside images of `benchmarks/outside.py` (dev and heldout: DICOM files of other
modalities and body parts, photos, drawings, documents, synthetic images, external X-rays
turned, negated or cropped) and scores each with the shipped model twice, by its pixels alone
(no DICOM header rule): as decoded now, its uniform borders trimmed, and untrimmed, as
pneumocxr decoded it before. Writes benchmarks/results/border_outside.json: per category, how
many images lost a border, how many are accepted either way, and the smallest scope scores.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from border_transforms import trimming_off  # noqa: E402
from outside import build  # noqa: E402

from common import save  # noqa: E402


def scores(model, images) -> np.ndarray:
    return np.array([f.scope_score for f in model.predict(images, batch_size=32)])


def measure(model, folder: Path) -> list[dict]:
    from pneumocxr.data.borders import trim_borders
    from pneumocxr.data.decode import read_gray
    from pneumocxr.errors import PneumoError

    rows = []
    for path, category in pd.read_csv(folder / "index.csv")[["path", "category"]].values:
        try:
            gray = read_gray(folder / path)  # pixels only: the header rule is not asked
        except PneumoError:
            continue  # unreadable (too small, say): refused before any model
        rows.append({"category": category, "name": Path(path).name, "gray": gray,
                     "trimmed": trim_borders(gray) is not gray})  # fmt: skip
    images = [np.asarray(r["gray"]) for r in rows]
    now = scores(model, images)
    with trimming_off():
        before = scores(model, images)
    for row, score, old in zip(rows, now, before):
        del row["gray"]
        row.update(score=float(score), score_untrimmed=float(old))
    return rows


def summary(rows: list[dict]) -> dict:
    by = {}
    for category in sorted({r["category"] for r in rows}):
        mine = [r for r in rows if r["category"] == category]
        trimmed = [r for r in mine if r["trimmed"]]
        by[category] = {
            "images": len(mine),
            "trimmed": len(trimmed),
            "accepted": sum(r["score"] <= 1 for r in mine),
            "accepted_untrimmed": sum(r["score_untrimmed"] <= 1 for r in mine),
            "min_score": min(r["score"] for r in mine),
            "min_score_untrimmed": min(r["score_untrimmed"] for r in mine),
            "trimmed_min_score": min((r["score"] for r in trimmed), default=None),
        }
    return by


def main() -> None:
    import pneumocxr

    model = pneumocxr.load_model("default")
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for which in ("dev", "heldout"):
            folder = build(Path(tmp) / which, which).parent
            rows = measure(model, folder)
            result[which] = {"categories": summary(rows), "images": rows}
    save("border_outside", {"command": "python benchmarks/border_outside.py", **result})


if __name__ == "__main__":
    main()
