"""Altered external X-rays: borders, crops, contrast, noise. What a model refuses, what it
answers, how well, and whether any answer is confidently wrong.

    python benchmarks/border_transforms.py [--model default] [--model RUN ...] [--limit N]

Every image of ../shared/data/external (312, **external**: never trained on; the shipped model's
calibration, threshold and band were fitted on it, so its figures there are selection figures)
is altered by each transform below and answered through `Model.predict`, the decoding path
every input takes (uniform borders trimmed, then squashed). For the border rows the images are
also answered with trimming switched off, as pneumocxr decoded them before it: "refused
untrimmed". Writes benchmarks/results/transforms.json and prints one Markdown table per model
(docs/VALIDATION.md, "Borders and other alterations").

Confidently wrong: an answer (NORMAL or PNEUMONIA, neither UNCERTAIN nor OUT_OF_SCOPE) with
the wrong label and a calibrated P(pneumonia) of at least 0.9 (answered PNEUMONIA) or at most
0.1 (answered NORMAL). "new" counts those whose untouched image was not confidently wrong, and
says what the untouched image got: a correct answer, a wrong one, UNCERTAIN (referred).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXTERNAL, save  # noqa: E402
from pneumocxr.data import alterations  # noqa: E402
from pneumocxr.task import CONFIDENT  # noqa: E402  (P beyond 0.9 / 0.1, calibrated)


def pad(fraction: float, value: int, sides: str = "all"):
    """The X-ray centred on a canvas whose border takes `fraction` of its side."""
    return lambda gray, _rng: alterations.border(np.asarray(gray), fraction, value, sides)


def as_jpeg(inner, quality: int):
    """`inner`'s result saved as a JPEG and decoded as an upload would be."""
    return lambda gray, rng: alterations.as_jpeg(inner(gray, rng), quality)


def shrunk_on_canvas(side: int, canvas: int):
    """The X-ray shrunk to `side` pixels on a black canvas: too little X-ray to trim to."""

    def apply(gray: Image.Image, _rng) -> np.ndarray:
        out = Image.new("L", (canvas, canvas), 0)
        small = gray.resize((side, side), Image.Resampling.BILINEAR)
        out.paste(small, ((canvas - side) // 2, (canvas - side) // 2))
        return np.asarray(out)

    return apply


def crop(fraction: float):
    return lambda gray, _rng: alterations.central_crop(np.asarray(gray), fraction)


def contrast(factor: float):
    return lambda gray, _rng: alterations.contrast(np.asarray(gray), factor)


def noise(sigma: float):
    def apply(gray: Image.Image, rng) -> np.ndarray:
        values = np.asarray(gray, dtype=np.float64) + rng.normal(0, sigma, gray.size[::-1])
        return np.clip(np.round(values), 0, 255).astype(np.uint8)

    return apply


def untouched(gray: Image.Image, _rng) -> np.ndarray:
    return np.asarray(gray)


# (name, transform, is a border row: also answered untrimmed)
TRANSFORMS = [
    ("untouched", untouched, False),
    ("untouched, saved as JPEG quality 75", as_jpeg(untouched, 75), False),
    ("black border 10%", pad(0.10, 0), True),
    ("black border 25%", pad(0.25, 0), True),
    ("black border 40%", pad(0.40, 0), True),
    ("black border 25%, left and right only", pad(0.25, 0, "sides"), True),
    ("black border 25%, saved as JPEG quality 75", as_jpeg(pad(0.25, 0), 75), True),
    ("black border 90%", pad(0.90, 0), True),
    ("white border 10%", pad(0.10, 255), True),
    ("white border 25%", pad(0.25, 255), True),
    ("white border 40%", pad(0.40, 255), True),
    ("white border 25%, saved as JPEG quality 75", as_jpeg(pad(0.25, 255), 75), True),
    ("X-ray shrunk to 24 px on a 240 px black canvas", shrunk_on_canvas(24, 240), True),
    ("central crop 90%", crop(0.90), False),
    ("central crop 70%", crop(0.70), False),
    ("central crop 50%", crop(0.50), False),
    ("contrast x0.5", contrast(0.5), False),
    ("contrast x0.3", contrast(0.3), False),
    ("Gaussian noise sigma 10", noise(10), False),
    ("Gaussian noise sigma 25", noise(25), False),
]


@contextmanager
def trimming_off():
    """Decode as pneumocxr did before borders were trimmed."""
    import pneumocxr.data.decode as decode

    kept = decode.trim_borders
    decode.trim_borders = lambda image: image
    try:
        yield
    finally:
        decode.trim_borders = kept


def external_images(limit: int | None):
    from pneumocxr.data.decode import read_gray

    files = sorted(EXTERNAL.glob("*/*.jpeg"))
    if limit:
        files = files[:: max(1, len(files) // limit)][:limit]
    truth = np.array([f.parent.name == "PNEUMONIA" for f in files])
    return [read_gray(f) for f in files], truth


def confidently_wrong(found, truth) -> np.ndarray:
    label = np.array([f.label for f in found])
    p = np.array([f.p_pneumonia for f in found])
    wrong_pneumonia = (label == "PNEUMONIA") & ~truth & (p >= CONFIDENT)
    wrong_normal = (label == "NORMAL") & truth & (p <= 1 - CONFIDENT)
    return wrong_pneumonia | wrong_normal


def causes(found) -> dict:
    """How often each cause is named among the refused (the phrase before its figures)."""
    counted = Counter()
    for f in found:
        if f.label == "OUT_OF_SCOPE":
            named = f.reason.split("refused above 1)")[-1].lstrip(": ")
            for phrase in named.split("; ") if named else ["(none named)"]:
                counted[phrase.split(" (")[0].split(":")[0]] += 1
    return dict(counted.most_common())


def outcome(found, truth) -> np.ndarray:
    """Each answer as correct, wrong, referred (UNCERTAIN) or refused."""
    label = np.array([f.label for f in found])
    right = np.where((label == "PNEUMONIA") == truth, "correct", "wrong")
    return np.where(label == "UNCERTAIN", "referred", np.where(label == "OUT_OF_SCOPE",
                                                               "refused", right))  # fmt: skip


def row(name: str, found, truth, baseline) -> dict:
    """`baseline`: (confidently wrong, outcome) of the untouched images."""
    label = np.array([f.label for f in found])
    answered = np.isin(label, ["NORMAL", "PNEUMONIA"])
    correct = (label == "PNEUMONIA") == truth
    wrong = confidently_wrong(found, truth)
    new = wrong & ~baseline[0]
    return {
        "transform": name,
        "images": len(found),
        "refused": int((label == "OUT_OF_SCOPE").sum()),
        "uncertain": int((label == "UNCERTAIN").sum()),
        "answered": int(answered.sum()),
        "answered_accuracy": float(correct[answered].mean()) if answered.any() else None,
        "confidently_wrong": int(wrong.sum()),
        "confidently_wrong_new": int(new.sum()),
        "new_when_untouched_was": dict(Counter(baseline[1][new].tolist())),
        "causes": causes(found),
    }


def measure(spec: str, images, truth) -> dict:
    import pneumocxr

    model = pneumocxr.load_model(spec)
    rows, baseline = [], None
    for name, transform, border in TRANSFORMS:
        start = time.perf_counter()
        altered = [transform(g, np.random.default_rng(i)) for i, g in enumerate(images)]
        found = model.predict(altered, batch_size=64)
        if baseline is None:  # the first transform is the untouched images
            baseline = confidently_wrong(found, truth), outcome(found, truth)
        result = row(name, found, truth, baseline)
        if border:
            with trimming_off():
                before = model.predict(altered, batch_size=64)
            result["refused_untrimmed"] = sum(f.label == "OUT_OF_SCOPE" for f in before)
        result["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(result)
        print(f"{model.name}: {name}: {result}", file=sys.stderr)
    return {"model": model.name, "spec": spec, "threshold": model.threshold,
            "band": model.uncertain_band, "rows": rows}  # fmt: skip


def table(result: dict) -> str:
    lines = [
        "| transform | refused | UNCERTAIN | answered | answered accuracy | confidently wrong "
        "(new) | refused untrimmed | cause named (refused) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        n = r["images"]
        accuracy = "-" if r["answered_accuracy"] is None else f"{r['answered_accuracy']:.3f}"
        before = f"{r['refused_untrimmed']}/{n}" if "refused_untrimmed" in r else ""
        named = ", ".join(f"{k} {v}" for k, v in r["causes"].items())
        was = ", ".join(f"{k} {v}" for k, v in sorted(r["new_when_untouched_was"].items()))
        new = f"{r['confidently_wrong_new']}" + (f": was {was}" if was else "")
        lines.append(
            f"| {r['transform']} | {r['refused']}/{n} | {r['uncertain']} | {r['answered']} | "
            f"{accuracy} | {r['confidently_wrong']} ({new}) | {before} | "
            f"{named} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="default, or a run or model folder")
    parser.add_argument("--limit", type=int, help="about this many external images (quick look)")
    parser.add_argument("--out", default="transforms", help="results/<name>.json")
    args = parser.parse_args()
    images, truth = external_images(args.limit)
    results = [measure(spec, images, truth) for spec in args.model or ["default"]]
    save(args.out, {"external": "../shared/data/external", "images": len(images),
                    "confident": CONFIDENT, "models": results})  # fmt: skip
    for result in results:
        print(f"\n{result['model']} ({result['spec']}), external set:\n\n{table(result)}")


if __name__ == "__main__":
    main()
