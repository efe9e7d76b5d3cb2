"""Assessing exported models: evaluate (to a folder, or metrics only), compare several, the
stress test, Grad-CAM to a folder, inter-rater agreement with the model as a rater."""

from __future__ import annotations

import logging
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import save_figure

# Imports of torch, Lightning and friends happen inside the functions that need them, so that
# light commands (agreement, report, --help) start in a fraction of a second.
log = logging.getLogger("pneumocxr")


# -- after training -------------------------------------------------------------------------
def evaluate_to_folder(
    model, out, data=None, split=None, threshold=None, overwrite=False, tta=False,
    scope_check: bool = True, *, strict=False, labels=None,
) -> dict:  # fmt: skip
    """Evaluate into `out`, which is replaced as a whole (never half old, half new)."""
    from pneumocxr.evaluation.evaluate import EVALUATION_FILES, write_evaluation
    from pneumocxr.fileio.atomic import replace_dir

    inputs = _check_folder_out(out, EVALUATION_FILES, overwrite, "evaluate", [model],
                               [data if labels is None else None])  # fmt: skip
    evaluation = _evaluation(model, data, split, threshold, tta, scope_check, strict, labels)
    with replace_dir(out, EVALUATION_FILES, overwrite, "evaluate", inputs) as tmp:
        write_evaluation(evaluation, tmp)
    return evaluation.metrics


def _check_folder_out(out, owned, overwrite: bool, command: str, inputs, walked) -> list:
    """Before the slow part: `out` may be replaced (only `owned` files, `overwrite` when it
    holds results, never an input) and lies outside every data folder `walked` for images.
    Returns the inputs as paths (a loaded model's folder for a model given loaded)."""
    from pneumocxr.fileio.atomic import check_replaceable
    from pneumocxr.fileio.outputs import check_outside

    paths = [getattr(item, "path", item) for item in inputs if item is not None]
    paths = [p for p in paths if isinstance(p, (str, Path)) and p != "default"]
    check_outside(out, walked)
    check_replaceable(out, owned, overwrite, command, paths)
    return paths


def evaluate_only(model, data=None, split=None, threshold=None, scope_check: bool = True,
                  strict: bool = False, labels=None) -> dict:  # fmt: skip
    """`evaluate_to_folder`'s metrics, writing nothing."""
    return _evaluation(model, data, split, threshold, False, scope_check, strict, labels).metrics


def _evaluation(model, data, split, threshold, tta: bool, scope_check: bool, strict=False,
                labels=None):  # fmt: skip
    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.evaluation.evaluate import evaluate_model, labelled_images
    from pneumocxr.inference.answers import Settings

    loaded = _with_tta(resolve_model(model), tta)
    images = labelled_images(data, split, loaded.path, labels=labels, strict=strict)
    settings = Settings.of(loaded, threshold, scope_check)
    return evaluate_model(loaded, images, settings, _name(loaded), strict=strict)


def _with_tta(loaded, tta: bool):
    from pneumocxr.predictors.tta import with_tta

    return with_tta(loaded) if tta else loaded


def compare_models(models, out, data=None, split=None, threshold=None, external=None, tta=False,
                   scope_check: bool = True, *, strict=False, labels=None,
                   overwrite: bool = False):  # fmt: skip
    """One ROC plot and one table for several models; with `external`, each model is also
    evaluated on that folder and the table shows internal, external and the gap. `out` is
    replaced whole, as evaluate's folder is."""
    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.data.index import index_images
    from pneumocxr.evaluation.evaluate import (
        COMPARISON_FILES,
        evaluate_model,
        labelled_images,
        write_comparison,
    )
    from pneumocxr.fileio.atomic import replace_dir
    from pneumocxr.inference.answers import Settings

    inputs = _check_folder_out(out, COMPARISON_FILES, overwrite, "compare", list(models),
                               [data if labels is None else None, external])  # fmt: skip
    loaded = [_with_tta(resolve_model(m), tta) for m in models]
    images = labelled_images(data, split, loaded[0].path, labels=labels, strict=strict)
    names = [_name(m) + (" +TTA" if tta else "") for m in loaded]
    names = _numbered(
        [f"{n} [{m.path}]" if names.count(n) > 1 else n for n, m in zip(names, loaded)]
    )
    cuts = [Settings.of(m, threshold, scope_check) for m in loaded]
    evaluations = [
        evaluate_model(m, images, c, n, strict=strict) for m, c, n in zip(loaded, cuts, names)
    ]
    outside = None
    if external is not None:
        ext_images = index_images(external, strict)[["path", "label"]]
        outside = [
            evaluate_model(m, ext_images, c, n, strict=strict)
            for m, c, n in zip(loaded, cuts, names)
        ]
    with replace_dir(out, COMPARISON_FILES, overwrite, "compare", inputs) as tmp:
        return write_comparison(evaluations, tmp, outside)


def _numbered(names: list[str], separator: str = " #") -> list[str]:
    """Make repeated names distinct (the table and the ROC plot are keyed by name)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}{separator}{seen[name]}")
    return out


def gradcam_to_folder(model, images, out, threshold=None, scope_check: bool = True,
                      overwrite: bool = False) -> list[Path]:  # fmt: skip
    """One PNG per image and panel.png with the first three; titles give the decision
    (OUT_OF_SCOPE and UNCERTAIN included); unreadable images are skipped with a warning.
    Nothing is written over an input, nor, without `overwrite`, over a file in `out` that
    pneumocxr did not draw."""
    import numpy as np
    import torch

    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.explain.gradcam import explanation_figure, panel_figure, require_gradcam
    from pneumocxr.fileio.folders import check_can_create
    from pneumocxr.fileio.outputs import check_output_files, made_by_pneumocxr_png
    from pneumocxr.inference.answers import Settings
    from pneumocxr.inference.predict import predict_arrays

    loaded = resolve_model(model)
    require_gradcam(loaded)  # before the output folder is made
    check_can_create(out)  # the folder itself is made when its first file is written
    out = Path(out)
    settings = Settings.of(loaded, threshold, scope_check)
    explanations = _explained(loaded, images, settings.threshold)
    pixels = torch.from_numpy(np.stack([e.image for e in explanations]))[:, None]
    notes = [e.note for e in explanations]
    for e, answer in zip(explanations, predict_arrays(loaded, pixels, settings, notes=notes)):
        e.predicted, e.probability = answer.label, answer.p_pneumonia
    stems = _numbered([Path(e.path).stem for e in explanations], "_")  # a/x.png and b/x.jpeg
    names = [f"{stem}_gradcam.png" for stem in stems] + ["panel.png"]
    check_output_files(out, dict.fromkeys(names, made_by_pneumocxr_png), "--out", images,
                       overwrite)  # fmt: skip
    written = []
    for e, name in zip(explanations, names):
        written.append(save_figure(explanation_figure(e), out / name))
    panel = panel_figure(explanations, f"Grad-CAM: {_name(loaded)}")
    written.append(save_figure(panel, out / "panel.png"))
    return written


def _explained(loaded, images, threshold: float):
    from pneumocxr.explain.gradcam import explain_files

    explanations, failures = explain_files(loaded, images, threshold)
    for _, reason in failures:
        log.warning("skipped %s", reason)  # the CLI's log prints it escaped
    if not explanations:
        raise PneumoError("no image could be read")
    return explanations


STRESS_FILES = {"stress.csv", "stress.json", "stress.md", "stress.png"}


def stress_to_folder(model, out, data=None, split=None, threshold=None, corruptions=None,
                     limit=None, seed: int = 0, *, strict=False, labels=None,
                     overwrite: bool = False) -> dict:  # fmt: skip
    """stress.csv, stress.json, stress.md and stress.png for one model on one image set, in
    `out`, which is replaced whole, as evaluate's folder is."""
    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.data.dataset import subset_patients
    from pneumocxr.evaluation.evaluate import labelled_images
    from pneumocxr.evaluation.stress import stress_test
    from pneumocxr.fileio.atomic import replace_dir
    from pneumocxr.inference.answers import choose_threshold

    inputs = _check_folder_out(out, STRESS_FILES, overwrite, "stress", [model],
                               [data if labels is None else None])  # fmt: skip
    loaded = resolve_model(model)
    images = labelled_images(
        data, split, loaded.path, keep_patients=True, labels=labels, strict=strict
    )
    if limit:
        images = subset_patients(images, limit, seed)
    cut = choose_threshold(threshold, loaded)
    log.info("stress test: %d images, threshold %.3f", len(images), cut)
    result = stress_test(loaded, images, cut, corruptions, seed, _log_stress_row, strict)
    summary = {"model": _name(loaded), "threshold": cut, **result.summary()}
    with replace_dir(out, STRESS_FILES, overwrite, "stress", inputs) as tmp:
        _write_stress(result, summary, tmp, _name(loaded))
    return summary


def _write_stress(result, summary: dict, out: Path, name: str) -> None:
    from pneumocxr.evaluation.stress import stress_figure, stress_markdown
    from pneumocxr.fileio.atomic import atomic_path
    from pneumocxr.fileio.formats import write_json, write_text

    with atomic_path(out / "stress.csv") as tmp:
        result.table.to_csv(tmp, index=False)
    write_json(out / "stress.json", {**summary, "rows": result.table.to_dict("records")})
    write_text(out / "stress.md", stress_markdown(result))
    save_figure(stress_figure(result, f"Stress test: {name}"), out / "stress.png")


def _log_stress_row(row: dict) -> None:
    log.info("  %-16s severity %d: AUC %.4f, accuracy %.4f", row["corruption"], row["severity"],
             row["auc"], row["accuracy"])  # fmt: skip


def rater_agreement(ratings_csv, model=None, threshold=None, all_pairs: bool = False) -> dict:
    """Agreement between the CSV's raters, plus the model as a rater when asked."""
    from pneumocxr.evaluation.agreement import agreement
    from pneumocxr.evaluation.ratings import read_ratings

    ratings, _ = read_ratings(ratings_csv)
    if model is not None:
        files = [_resolve_image(Path(ratings_csv).parent, name) for name in ratings["image"]]
        from pneumocxr.artifact.resolve import resolve_model
        from pneumocxr.inference.answers import Settings
        from pneumocxr.inference.predict import predict_files

        loaded = resolve_model(model)
        found, failures = predict_files(loaded, files, Settings.of(loaded, threshold))
        if failures:
            raise PneumoError(f"the model could not read {failures[0][1]}")
        # the plain thresholded label: every image is rated, as the raters rated every image
        ratings["model"] = [float(f.predicted == "PNEUMONIA") for f in found]
    return agreement(ratings, all_pairs=all_pairs)


def _resolve_image(base: Path, name: str) -> Path:
    """A listed image: absolute, relative to the ratings file, or relative to here."""
    path = Path(name.strip())
    for candidate in (path,) if path.is_absolute() else (base / path, path):
        if candidate.is_file():
            return candidate
    raise PneumoError(f"image listed in the ratings not found: {name} (looked beside {base})")


def _name(loaded) -> str:
    from pneumocxr.artifact.resolve import model_name

    return model_name(loaded)
