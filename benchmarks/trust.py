"""Measurements behind "knowing what it does not know" (issue 15), run by benchmarks/run.py:

    python benchmarks/run.py scope        # the scope check per category, AUROC, baselines
    python benchmarks/run.py calibration  # cross-fitted ECE and UNCERTAIN on the external set

`scope` scores the shipped model (and both models of a fresh `pneumocxr run --quick`) on
images that are not pediatric frontal chest X-rays (benchmarks/outside.py: a `dev` set the
method was chosen by and a `heldout` set measured once afterwards), on the external X-rays and
on the internal test split. Nothing here is fitted: every model's scope check was fitted on its
own training split only. `calibration` cross-fits by patient halves of the external set.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "chest_xray").resolve()
EXTERNAL = (ROOT / ".." / "shared" / "data" / "external").resolve()
PNEUMOCXR = [sys.executable, "-m", "pneumocxr.cli"]


def _auroc(inside, outside) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(labels, np.r_[inside, outside]))


def _answers(model, paths) -> list:
    found, failures = model.predict_paths(paths)
    if failures:
        print(f"{len(failures)} unreadable, e.g. {failures[0][1]}", file=sys.stderr)
    return found


def _internal_test(model_name: str, tmp: Path) -> list[str]:
    """The internal test split the model was evaluated on (rebuilt by `pneumocxr split`)."""
    import pandas as pd

    out = tmp / f"split-{model_name}"
    subprocess.run([*PNEUMOCXR, "split", "--data", DATA, "--split", "patient", "--seed", "42",
                    "--out", out], check=True, capture_output=True)  # fmt: skip
    table = pd.read_csv(out / "splits.csv")
    return table.loc[table["split"] == "test", "path"].tolist()


def measure_model(model, outside: dict[str, Path], internal: list | None) -> dict:
    """Per category: images, refused share, smallest and median scope score, and the AUROC of
    the scope score (and of the MaxLogit and energy baselines) against the external X-rays."""
    import pandas as pd

    external = _answers(model, [EXTERNAL])
    result = {"model": model.name, "features": model.meta.get("scope", {}).get("features"),
              "external": _summary(external)}  # fmt: skip
    if internal is not None:
        result["internal_test"] = _summary(_answers(model, internal))
    ext_scores = np.array([a.scope_score for a in external])
    ext_logits = np.array([a.logit for a in external])
    for name, folder in outside.items():
        index = pd.read_csv(folder / "index.csv")
        found = {Path(a.path).resolve(): a for a in _answers(model, [folder])}
        rows = []
        for rel, category in zip(index["path"], index["category"]):
            answer = found.get((folder / rel).resolve())
            rows.append((category, answer))
        categories = {}
        for category in sorted({c for c, _ in rows}):
            answers = [a for c, a in rows if c == category and a is not None]
            unreadable = sum(1 for c, a in rows if c == category and a is None)
            categories[category] = {**_summary(answers), "refused_unreadable": unreadable}
        answered = [a for _, a in rows if a is not None]
        scores = np.array([a.scope_score for a in answered])
        logits = np.array([a.logit for a in answered])
        pixels_only = [a.scope_score > 1 for _, a in rows if a is not None]
        result[name] = {
            "categories": categories,
            "images": len(rows),
            "refused": (sum(not a.in_scope for a in answered) + len(rows) - len(answered))
            / len(rows),
            "refused_by_pixels_alone": float(np.mean(pixels_only)),
            "auroc_scope": _auroc(ext_scores, scores),
            "auroc_maxlogit": _auroc(-np.abs(ext_logits), -np.abs(logits)),
            "auroc_energy": _auroc(
                -np.logaddexp(ext_logits / 2, -ext_logits / 2),
                -np.logaddexp(logits / 2, -logits / 2),
            ),  # fmt: skip
        }
    adult = outside["dev"] / "adult_chest"
    result["adult_chest"] = [_one(a) for a in _answers(model, [adult])]
    return result


def _summary(answers: list) -> dict:
    scores = np.array([a.scope_score for a in answers]) if answers else np.zeros(0)
    return {
        "n": len(answers),
        "refused": float(np.mean([not a.in_scope for a in answers])) if answers else None,
        "min_score": float(scores.min()) if len(scores) else None,
        "median_score": float(np.median(scores)) if len(scores) else None,
        "max_score": float(scores.max()) if len(scores) else None,
        "labels": {
            k: sum(a.label == k for a in answers)
            for k in ("NORMAL", "PNEUMONIA", "UNCERTAIN", "OUT_OF_SCOPE")
        },  # fmt: skip
    }


def _one(answer) -> dict:
    return {"label": answer.label, "p_pneumonia": answer.p_pneumonia,
            "scope_score": answer.scope_score, "reason": answer.reason}  # fmt: skip


def scope(save) -> None:
    from outside import build  # benchmarks/outside.py

    import pneumocxr

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        outside = {}
        for which in ("dev", "heldout"):
            outside[which] = tmp / which
            build(outside[which], which)
        from outside import adult_chest

        adult_chest(outside["dev"])
        results = [measure_model(pneumocxr.load_model("default"), outside,
                                 _internal_test("default", tmp))]  # fmt: skip
        quick = tmp / "quick"
        subprocess.run([*PNEUMOCXR, "run", "--quick", "--data", DATA, "--out", quick],
                       check=True, capture_output=True)  # fmt: skip
        for sub in sorted(quick.glob("run-*/*/model.json")):
            results.append(measure_model(pneumocxr.load_model(sub.parent), outside, None))
    note = (
        "dev: what the method was chosen by; heldout: measured once after; quick-run models: "
        "`pneumocxr run --quick` (128 px, about 800 images)"
    )
    save("scope", {"command": "python benchmarks/run.py scope", "models": results, "note": note})


def calibration(save, repeats: int = 50) -> None:
    """Cross-fitted by patient halves of the external set (fit on one, measure on the other,
    both ways, `repeats` random halvings): ECE of each calibration method, the ECE a perfectly
    calibrated model would show on as many images (the measurement's floor), and the UNCERTAIN
    band's rule (docs/VALIDATION.md) with the shipped model's threshold."""
    import pneumocxr
    from pneumocxr.data.index import index_images
    from pneumocxr.decision.band import fit_band
    from pneumocxr.decision.calibration import calibration_error, fit_calibration, sigmoid
    from pneumocxr.evaluation.metrics import answered_metrics

    model = pneumocxr.load_model("default")
    table = index_images(EXTERNAL)
    found = {a.path: a for a in _answers(model, table["path"].tolist())}
    logits = np.array([found[p].logit for p in table["path"]])
    labels = (table["label"] == "PNEUMONIA").to_numpy(int)
    patients = table["patient"].to_numpy()
    cut = float(model.meta["threshold_logit"])
    budget = model.meta["uncertain"]["budget"]
    rng = np.random.default_rng(0)
    ece = {m: [] for m in ("platt", "temperature", "isotonic", "none")}
    band_rows = []
    for _ in range(repeats):
        half = set()
        for label in (0, 1):
            people = np.unique(patients[labels == label])
            rng.shuffle(people)
            half |= set(people[: len(people) // 2])
        a = np.array([p in half for p in patients])
        for fit, test in ((a, ~a), (~a, a)):
            for method in ece:
                calibrated = fit_calibration(logits[fit], labels[fit], method)
                ece[method].append(calibration_error(labels[test], calibrated.apply(logits[test])))
            platt = fit_calibration(logits[fit], labels[fit], "platt")
            threshold = float(platt.apply(cut))
            band = fit_band(platt.apply(logits[fit]), labels[fit], threshold, budget)
            p = platt.apply(logits[test])
            decided = np.where(band.contains(p), "UNCERTAIN",
                               np.where(p >= threshold, "PNEUMONIA", "NORMAL"))  # fmt: skip
            band_rows.append(answered_metrics(labels[test], decided))
    shipped = model.loaded.calibration.apply(logits)
    floor = {n: _floor(shipped, n, rng) for n in (len(labels) // 2, len(labels))}
    save("calibration", {
        "command": "python benchmarks/run.py calibration",
        "images": len(labels), "repeats": repeats, "budget": budget,
        "ece_crossfit": {m: _stats(v) for m, v in ece.items()},
        "ece_uncalibrated_all": calibration_error(labels, sigmoid(logits)),
        "ece_shipped_in_sample": calibration_error(labels, shipped),
        "ece_floor": floor,
        "band_crossfit": {k: _stats([r[k] for r in band_rows]) for k in
                          ("referred", "answered_accuracy", "answered_sensitivity",
                           "answered_specificity")},  # fmt: skip
        "best_possible_in_sample": _best_band(logits, labels),
    })  # fmt: skip


def _stats(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p10": float(np.quantile(values, 0.1)), "p90": float(np.quantile(values, 0.9)),
            "min": float(values.min()), "max": float(values.max())}  # fmt: skip


def _floor(probs: np.ndarray, n: int, rng, repeats: int = 200) -> dict:
    """ECE of a perfectly calibrated model with these probabilities, measured on n images."""
    from pneumocxr.decision.calibration import calibration_error

    values = []
    for _ in range(repeats):
        pick = rng.choice(len(probs), n, replace=False)
        outcome = (rng.random(n) < probs[pick]).astype(int)
        values.append(calibration_error(outcome, probs[pick]))
    return _stats(values)


def _best_band(logits, labels, most: float = 0.10) -> dict:
    """The best any band around any threshold could do on these very images (an upper bound,
    fitted on what it measures): highest answered accuracy with at most `most` referred."""
    order = np.argsort(logits)
    y = labels[order]
    n, limit = len(y), int(most * len(y))
    best = (0.0, 0.0, 0.0)
    for i in range(n + 1):
        for j in range(i, min(n, i + limit) + 1):
            answered = n - (j - i)
            errors = y[:i].sum() + (1 - y[j:]).sum()
            sensitivity = y[j:].sum() / max(1, y[:i].sum() + y[j:].sum())
            best = max(best, (1 - errors / answered, sensitivity, (j - i) / n))
    return {"answered_accuracy": best[0], "answered_sensitivity": best[1], "referred": best[2]}
