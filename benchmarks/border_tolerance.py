"""How uniform a border must be to be trimmed, measured; and the ranges of the training X-rays
that a refusal's reason compares an image with.

    python benchmarks/border_tolerance.py [--limit N]

For no trimming (tolerance None) and each tolerance (gray levels a border pixel may differ
from its edge's value):

- how many X-rays of the training pool (../shared/data/chest_xray/train, 5,216: **internal**)
  and of the external set (312: **external**) have a border that would be trimmed;
- the shipped model on the external set with that trimming: AUC, accuracy at its threshold,
  answers that change against the untrimmed images, refusals;
- a third of the external X-rays padded with a 25% black or white border and saved as PNG or
  JPEG (quality 75 and 95): the border left after trimming (pixels a side, against the same
  X-ray trimmed) and how many the shipped model refuses.

Then `scope.differences`' statistics (spread, mean, noise, detail) over the training pool at
224 pixels, trimmed as the models see it. Nothing here is tuned on the external set: its rows
show what each tolerance does there. Writes benchmarks/results/border_tolerance.json.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, EXTERNAL, save  # noqa: E402

TOLERANCES = (0, 2, 4, 8, 12, 16, 24, 32)
PADDINGS = [(value, quality) for value in (0, 255) for quality in (None, 75, 95)]


def gray_files(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(folder.glob("*/*.jpeg"))
    return files[:: max(1, len(files) // limit)][:limit] if limit else files


def padded(gray: Image.Image, value: int, quality: int | None) -> Image.Image:
    """A 25% border (of the canvas side) saved as PNG or JPEG and decoded again."""
    from pneumocxr.data.decode import read_gray_bytes

    width, height = gray.size
    canvas = Image.new("L", (round(width / 0.75), round(height / 0.75)), value)
    canvas.paste(gray, ((canvas.width - width) // 2, (canvas.height - height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG" if quality is None else "JPEG", quality=quality or 95)
    return read_gray_bytes(buffer.getvalue())


def answers(model, images):
    return model.predict([np.asarray(i) for i in images], batch_size=64)


def external_effect(model, grays, truth, plain) -> dict:
    """The shipped model on the external set, trimmed against untrimmed."""
    from sklearn.metrics import roc_auc_score

    from pneumocxr.data.borders import trim_borders

    trimmed = [trim_borders(g) for g in grays]
    found = answers(model, trimmed)
    p = np.array([f.p_pneumonia for f in found])
    p_plain = np.array([f.p_pneumonia for f in plain])
    return {
        "external_trimmed": int(sum(t is not g for t, g in zip(trimmed, grays))),
        "auc": float(roc_auc_score(truth, p)),
        "accuracy": float(((p >= model.threshold) == truth).mean()),
        "labels_changed": int(sum(a.label != b.label for a, b in zip(found, plain))),
        "max_p_change": float(np.abs(p - p_plain).max()),
        "refused": int(sum(not f.in_scope for f in found)),
    }


def padding_effect(model, grays) -> list[dict]:
    """Padded X-rays: the border left after trimming, and the refusals."""
    from pneumocxr.data.borders import trim_borders

    reference = [trim_borders(g) for g in grays]
    rows = []
    for value, quality in PADDINGS:
        trimmed = [trim_borders(padded(g, value, quality)) for g in grays]
        left = [max(0, (t.width - r.width) / 2, (t.height - r.height) / 2)
                for t, r in zip(trimmed, reference)]  # fmt: skip
        found = answers(model, trimmed)
        rows.append({"border": "black" if value == 0 else "white",
                     "saved_as": "PNG" if quality is None else f"JPEG {quality}",
                     "left_px_median": float(np.median(left)), "left_px_max": float(max(left)),
                     "refused": int(sum(not f.in_scope for f in found)),
                     "images": len(grays)})  # fmt: skip
    return rows


def with_border(images) -> int:
    from pneumocxr.data.borders import trim_borders

    return sum(trim_borders(i) is not i for i in images)


def sweep(train, grays, truth, model) -> list[dict]:
    from pneumocxr.data import borders

    kept = borders.TOLERANCE
    rows = []
    try:
        borders.TOLERANCE = -1  # nothing lies within -1 gray levels: no border is trimmed
        plain = answers(model, grays)  # the external set as it was decoded before trimming
        rows.append({"tolerance": None, **external_effect(model, grays, truth, plain)})
        for tolerance in TOLERANCES:
            borders.TOLERANCE = tolerance
            row = {"tolerance": tolerance, "train_trimmed": with_border(train),
                   "train_images": len(train), "external_images": len(grays),
                   **external_effect(model, grays, truth, plain),
                   "padded": padding_effect(model, grays[::3])}  # fmt: skip
            rows.append(row)
            print(row, file=sys.stderr)
    finally:
        borders.TOLERANCE = kept
    return rows


def pixel_ranges(train) -> dict:
    """What scope.differences compares a refused image with, over the training pool."""
    from pneumocxr.data.decode import squash
    from pneumocxr.scope.differences import _noise

    stats = {"spread": [], "mean": [], "noise": [], "detail": []}
    for image in train:
        values = squash(image, 224).astype(np.float32)
        low, high = np.percentile(values, (1, 99))
        noise = _noise(values)
        for key, value in (("spread", high - low), ("mean", values.mean()), ("noise", noise),
                           ("detail", noise / (high - low))):  # fmt: skip
            stats[key].append(float(value))
    return {key: {"min": min(v), "p0.1": float(np.percentile(v, 0.1)),
                  "p99.9": float(np.percentile(v, 99.9)), "max": max(v)}
            for key, v in stats.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="about this many images of each set")
    args = parser.parse_args()
    import pneumocxr
    from pneumocxr.data.decode import read_gray

    train = [read_gray(f) for f in gray_files(DATA / "train", args.limit)]
    files = gray_files(EXTERNAL, args.limit)
    grays = [read_gray(f) for f in files]
    truth = np.array([f.parent.name == "PNEUMONIA" for f in files])
    from pneumocxr.data import borders

    rows = sweep(train, grays, truth, pneumocxr.load_model("default"))
    chosen = {"tolerance": borders.TOLERANCE, "stray": borders.STRAY}
    save("border_tolerance", {"chosen": chosen, "sweep": rows,
                              "training_pool_224px": pixel_ranges(train)})  # fmt: skip


if __name__ == "__main__":
    main()
