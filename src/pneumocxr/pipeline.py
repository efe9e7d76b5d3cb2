"""Application workflows behind the CLI: they wire the layers together and hold no ML logic."""

from __future__ import annotations

import logging
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio import save_figure

# Imports of torch, Lightning and friends happen inside the functions that need them, so that
# light commands (agreement, report, --help) start in a fraction of a second.
log = logging.getLogger("pneumocxr")


def model_table() -> list[dict]:
    """Each architecture at its default size, frozen as its first training phase freezes it."""
    from pneumocxr.models.registry import MODELS, build_model
    from pneumocxr.models.summary import parameter_counts

    rows = []
    for name, cls in MODELS.items():
        model = build_model(name, weights="none")
        start = model.backbone_stages if cls.pretrained_source else 0
        model.freeze_before(start)
        rows.append({"name": name, "input_size": model.image_size, **parameter_counts(model)})
    return rows


def write_preview(root, out, image_size: int = 224, seed: int = 42) -> Path:
    """16 augmented training images (of the default patient split)."""
    from pneumocxr.data.decode import decode_all
    from pneumocxr.data.index import index_images, require_both_classes
    from pneumocxr.data.plots import augmentation_figure
    from pneumocxr.data.split import make_splits

    table = index_images(root)
    require_both_classes(table, root)
    table = make_splits(table, seed=seed)
    train_rows = table[table["split"] == "train"]
    train_rows = train_rows.sample(n=min(16, len(train_rows)), random_state=seed)
    decoded = decode_all(train_rows["path"], image_size)
    labels = (train_rows["label"][decoded.ok] == "PNEUMONIA").astype(int).tolist()
    return save_figure(augmentation_figure(decoded.pixels, labels, seed), out)


def run_tutorial(
    root,
    out,
    transfer: str,
    quick: bool,
    seed: int = 42,
    transfer_weights: str = "default",
    external=None,
    split: str = "auto",
    strict: bool = False,
    labels=None,
) -> Path:
    """Split, plots, SmallNet and a transfer model on the same split, compared (and on an
    external set, when given)."""
    from pneumocxr.data.dataset import load_dataset, load_external
    from pneumocxr.data.plots import augmentation_figure
    from pneumocxr.data.split import PROTOCOLS
    from pneumocxr.models.registry import build_model
    from pneumocxr.training import rundir
    from pneumocxr.training.trainer import QUICK, RUN_RECIPES, TrainConfig, train

    build_model(transfer, weights=transfer_weights)  # fail now, not after SmallNet
    run_dir = rundir.new_run_dir(out, "run")
    log.info("run folder: %s", run_dir)
    size = QUICK["image_size"] if quick else 224  # one decoded cache serves both models
    limit = QUICK["limit"] if quick else None
    dataset = load_dataset(
        root, size, split=split, seed=seed, limit=limit, strict=strict, labels=labels
    )
    log.info("split protocol: %s", PROTOCOLS[dataset.protocol])
    split = dataset.protocol
    outside = None if external is None else load_external(external, size, dataset.table, strict)
    rundir.write_splits(run_dir, dataset.table)
    train_labels = dataset.labels[dataset.split_index()["train"]].int().tolist()
    train_pixels = dataset.pixels[dataset.split_index()["train"]]
    save_figure(augmentation_figure(train_pixels, train_labels, seed), run_dir / "preview.png")
    results = {}
    for name in ("smallnet", transfer):
        log.info("== training %s ==", name)
        recipe = RUN_RECIPES["smallnet" if name == "smallnet" else "transfer"]
        cfg = TrainConfig(
            data=str(root),
            model=name,
            seed=seed,
            quick=quick,
            image_size=size,
            split=split,
            weights="default" if name == "smallnet" else transfer_weights,
            external=None if external is None else str(external),
            strict=strict,
            labels=None if labels is None else labels.to_dict(),
            **recipe,
        )
        results[name] = train(cfg, dataset, run_dir=run_dir / name, external=outside)
    log.info("\nvalidation metrics (internal):\n%s", _side_by_side(results))
    _evaluate_run(run_dir, dataset.table, results, seed, outside)
    _print_locations(run_dir, results)
    return run_dir


def _evaluate_run(run_dir: Path, table, results: dict, seed: int, external=None) -> None:
    """Test-split evaluation, Grad-CAM on the same three test images, comparison, report;
    `external` is the external set as loaded for training (indexed and checked once)."""
    from pneumocxr.evaluation.evaluate import (
        comparison_markdown,
        evaluate_model,
        write_comparison,
        write_evaluation,
    )
    from pneumocxr.evaluation.inference import Settings
    from pneumocxr.models.io import load_model
    from pneumocxr.report.html import write_report

    test = table[table["split"] == "test"][["path", "label"]].reset_index(drop=True)
    outside = None if external is None else external.table[["path", "label"]]
    examples = gradcam_examples(table[table["split"] == "test"], seed)
    evaluations, external_evaluations = [], []
    for name, result in results.items():
        log.info("evaluating %s on %d test images", name, len(test))
        loaded = load_model(result.run_dir)
        settings = Settings.of(loaded)
        evaluation = evaluate_model(loaded, test, settings, name)
        write_evaluation(evaluation, result.run_dir / "evaluation")
        evaluations.append(evaluation)
        if outside is not None:
            log.info("evaluating %s on %d external images", name, len(outside))
            ext = evaluate_model(loaded, outside, settings, name)
            write_evaluation(ext, result.run_dir / "evaluation_external")
            external_evaluations.append(ext)
        gradcam_to_folder(loaded, examples, result.run_dir / "gradcam")
    comparison = write_comparison(evaluations, run_dir / "comparison", external_evaluations or None)
    log.info("\ntest metrics:\n%s", comparison_markdown(comparison))
    log.info("report: %s", write_report(run_dir))


def gradcam_examples(test, seed: int) -> list[str]:
    """Three test images to explain: a normal, a bacterial and a viral pneumonia if present."""
    picks = []
    for label, subtype in (("NORMAL", ""), ("PNEUMONIA", "bacteria"), ("PNEUMONIA", "virus")):
        rows = test[(test["label"] == label) & (test["subtype"].fillna("") == subtype)]
        if len(rows):
            picks.append(rows.sample(1, random_state=seed)["path"].iloc[0])
    rest = test[~test["path"].isin(picks)]
    picks += list(rest.sample(min(3 - len(picks), len(rest)), random_state=seed)["path"])
    return picks


def _side_by_side(results) -> str:
    import pandas as pd

    table = pd.DataFrame({name: r.val_metrics for name, r in results.items()})
    table.loc["threshold"] = [r.threshold for r in results.values()]
    return table.to_string(float_format=lambda v: f"{v:.4f}")


def _print_locations(run_dir: Path, results) -> None:
    log.info("\nwhere everything is:")
    log.info("  splits        %s", run_dir / "splits.csv")
    log.info("  distribution  %s", run_dir / "distribution.png")
    log.info("  augmentation  %s", run_dir / "preview.png")
    log.info("  comparison    %s", run_dir / "comparison")
    log.info("  report        %s", run_dir / "report.html")
    for name, result in results.items():
        log.info("  %-13s %s", name, result.run_dir)
    log.info("  (each model: history.png, summary.txt, model.json, evaluation/, gradcam/, tb/)")


# -- after training -------------------------------------------------------------------------
def evaluate_to_folder(
    model, out, data=None, split=None, threshold=None, overwrite=False, tta=False,
    scope_check: bool = True, *, strict=False, labels=None,
) -> dict:  # fmt: skip
    """Evaluate into `out`, which is replaced as a whole (never half old, half new)."""
    from pneumocxr.evaluation.evaluate import EVALUATION_FILES, write_evaluation
    from pneumocxr.fileio import check_replaceable, replace_dir

    check_replaceable(out, EVALUATION_FILES, overwrite, "evaluate")  # before the slow part
    evaluation = _evaluation(model, data, split, threshold, tta, scope_check, strict, labels)
    with replace_dir(out, EVALUATION_FILES, overwrite, "evaluate") as tmp:
        write_evaluation(evaluation, tmp)
    return evaluation.metrics


def evaluate_only(model, data=None, split=None, threshold=None, scope_check: bool = True,
                  strict: bool = False, labels=None) -> dict:  # fmt: skip
    """`evaluate_to_folder`'s metrics, writing nothing."""
    return _evaluation(model, data, split, threshold, False, scope_check, strict, labels).metrics


def _evaluation(model, data, split, threshold, tta: bool, scope_check: bool, strict=False,
                labels=None):  # fmt: skip
    from pneumocxr.evaluation.evaluate import evaluate_model, labelled_images
    from pneumocxr.evaluation.inference import Settings, resolve_model

    loaded = _with_tta(resolve_model(model), tta)
    images = labelled_images(data, split, loaded.path, labels=labels, strict=strict)
    settings = Settings.of(loaded, threshold, scope_check)
    return evaluate_model(loaded, images, settings, _name(loaded), strict=strict)


def _with_tta(loaded, tta: bool):
    from pneumocxr.models.tta import with_tta

    return with_tta(loaded) if tta else loaded


def compare_models(models, out, data=None, split=None, threshold=None, external=None, tta=False,
                   scope_check: bool = True, *, strict=False, labels=None):  # fmt: skip
    """One ROC plot and one table for several models; with `external`, each model is also
    evaluated on that folder and the table shows internal, external and the gap."""
    from pneumocxr.data.index import index_images
    from pneumocxr.evaluation.evaluate import evaluate_model, labelled_images, write_comparison
    from pneumocxr.evaluation.inference import Settings, resolve_model

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
    return write_comparison(evaluations, out, outside)


def _numbered(names: list[str], separator: str = " #") -> list[str]:
    """Make repeated names distinct (the table and the ROC plot are keyed by name)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}{separator}{seen[name]}")
    return out


def gradcam_to_folder(model, images, out, threshold=None, scope_check: bool = True) -> list[Path]:
    """One PNG per image and panel.png with the first three; titles give the decision
    (OUT_OF_SCOPE and UNCERTAIN included); unreadable images are skipped with a warning."""
    import numpy as np
    import torch

    from pneumocxr.evaluation.inference import Settings, predict_arrays, resolve_model
    from pneumocxr.explain.gradcam import explanation_figure, panel_figure, require_gradcam
    from pneumocxr.fileio import check_can_create

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
    written = []
    stems = _numbered([Path(e.path).stem for e in explanations], "_")  # a/x.png and b/x.jpeg
    for e, stem in zip(explanations, stems):
        written.append(save_figure(explanation_figure(e), out / f"{stem}_gradcam.png"))
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


def stress_to_folder(model, out, data=None, split=None, threshold=None, corruptions=None,
                     limit=None, seed: int = 0, *, strict=False, labels=None) -> dict:  # fmt: skip
    """stress.csv, stress.json, stress.md and stress.png for one model on one image set."""
    from pneumocxr.data.dataset import subset_patients
    from pneumocxr.evaluation.evaluate import labelled_images
    from pneumocxr.evaluation.inference import choose_threshold, resolve_model
    from pneumocxr.evaluation.stress import stress_figure, stress_markdown, stress_test
    from pneumocxr.fileio import atomic_path, ensure_dir, write_json, write_text

    loaded = resolve_model(model)
    out = ensure_dir(out)
    images = labelled_images(
        data, split, loaded.path, keep_patients=True, labels=labels, strict=strict
    )
    if limit:
        images = subset_patients(images, limit, seed)
    cut = choose_threshold(threshold, loaded)
    log.info("stress test: %d images, threshold %.3f", len(images), cut)
    result = stress_test(loaded, images, cut, corruptions, seed, _log_stress_row, strict)
    with atomic_path(out / "stress.csv") as tmp:
        result.table.to_csv(tmp, index=False)
    summary = {"model": _name(loaded), "threshold": cut, **result.summary()}
    write_json(out / "stress.json", {**summary, "rows": result.table.to_dict("records")})
    write_text(out / "stress.md", stress_markdown(result))
    save_figure(stress_figure(result, f"Stress test: {_name(loaded)}"), out / "stress.png")
    return summary


def _log_stress_row(row: dict) -> None:
    log.info("  %-16s severity %d: AUC %.4f, accuracy %.4f", row["corruption"], row["severity"],
             row["auc"], row["accuracy"])  # fmt: skip


def rater_agreement(ratings_csv, model=None, threshold=None) -> dict:
    """Agreement between the CSV's raters, plus the model as a rater when asked."""
    from pneumocxr.evaluation.agreement import agreement, read_ratings

    ratings, _ = read_ratings(ratings_csv)
    if model is not None:
        files = [_resolve_image(Path(ratings_csv).parent, name) for name in ratings["image"]]
        from pneumocxr.evaluation.inference import Settings, predict_files, resolve_model

        loaded = resolve_model(model)
        found, failures = predict_files(loaded, files, Settings.of(loaded, threshold))
        if failures:
            raise PneumoError(f"the model could not read {failures[0][1]}")
        # the plain thresholded label: every image is rated, as the raters rated every image
        ratings["model"] = [float(f.predicted == "PNEUMONIA") for f in found]
    return agreement(ratings)


def _resolve_image(base: Path, name: str) -> Path:
    """A listed image: absolute, relative to the ratings file, or relative to here."""
    path = Path(name.strip())
    for candidate in (path,) if path.is_absolute() else (base / path, path):
        if candidate.is_file():
            return candidate
    raise PneumoError(f"image listed in the ratings not found: {name} (looked beside {base})")


EXPORT_FORMATS = ("safetensors", "onnx")


def export_model(model, out, half: bool = False, overwrite: bool = False, card=None,
                 fmt: str = "safetensors") -> Path:  # fmt: skip
    """Re-save a model (e.g. as float16 for shipping), keeping its threshold, calibration, band,
    scope check and training summary; `card` (evaluation.validation.Card) refits what it names.
    The model folder is replaced as a whole, so weights and metadata always belong together.

    `fmt` "onnx" writes model.onnx (the forward pass with the scope check, float32, for ONNX
    Runtime: models/onnx_model.py) instead of model.safetensors; ensembles too, as one graph."""
    import torch

    from pneumocxr.evaluation.inference import resolve_model
    from pneumocxr.evaluation.validation import Card
    from pneumocxr.fileio import check_replaceable, replace_dir
    from pneumocxr.models.io import EXPORT_FILES, META_NAME, ONNX_FORMAT, save_model

    if fmt not in EXPORT_FORMATS:
        raise PneumoError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    onnx = fmt == "onnx"
    if onnx and half:
        raise PneumoError(
            "--half applies to model.safetensors; an ONNX export is float32 (what ONNX "
            "Runtime's CPU kernels compute in): export without --half"
        )
    check_replaceable(out, EXPORT_FILES, overwrite, "export")
    loaded = resolve_model(model, legacy=True)
    if loaded.meta.get("format") == ONNX_FORMAT:
        raise PneumoError(
            f"{loaded.path} is already an ONNX export; export the model folder it came from"
        )
    card = card or Card()
    if loaded.meta.get("members"):
        if not onnx:
            raise PneumoError("export takes a single model; an ensemble folder is already exported")
        return _export_ensemble_onnx(loaded, out, overwrite, card)
    keep = {k: loaded.meta[k] for k in KEPT if k in loaded.meta}
    keep["exported_from"] = loaded.meta.get("exported_from") or Path(loaded.path).resolve().name
    scope = _scope(loaded, card)
    if scope is not None:
        loaded.model.scope, keep["scope"] = scope
    if _refits(card, loaded):
        keep.update(card_figures(loaded, card))
    with replace_dir(out, EXPORT_FILES, overwrite, "export") as tmp:
        if onnx:
            from pneumocxr.models.onnx_model import save_onnx

            save_onnx(loaded.model, tmp, keep, loaded.meta["architecture"])
        else:
            save_model(loaded.model, tmp, keep, torch.float16 if half else torch.float32)
    return Path(out) / META_NAME


def _export_ensemble_onnx(loaded, out, overwrite: bool, card) -> Path:
    """An ensemble as one ONNX graph, with the threshold, calibration and band it was made
    with (`pneumocxr ensemble` is where they are chosen)."""
    from pneumocxr.fileio import replace_dir
    from pneumocxr.models.io import EXPORT_FILES, META_NAME
    from pneumocxr.models.onnx_model import save_onnx

    if _asked(card):
        raise PneumoError(
            "an ensemble is exported with the threshold, calibration and band it was made with; "
            "to change them, make it again (pneumocxr ensemble ... --threshold ...)"
        )
    keep = {k: loaded.meta[k] for k in (*KEPT, "combine") if k in loaded.meta}
    keep.pop("scope", None)  # the members' checks, combined (onnx_model.ensemble_scope)
    keep["exported_from"] = Path(loaded.path).resolve().name
    with replace_dir(out, EXPORT_FILES, overwrite, "export") as tmp:
        save_onnx(loaded.model, tmp, keep, loaded.meta["architecture"])
    return Path(out) / META_NAME


# What export carries over from the model's own model.json.
KEPT = ("threshold", "threshold_logit", "threshold_method", "youden_threshold_val", "calibration",
        "calibration_error", "uncertain", "scope", "validation", "training")  # fmt: skip


def _refits(card, loaded) -> bool:
    """Does the export change the calibration, threshold, band or figures?"""
    return _asked(card) or "calibration" not in loaded.meta


def _asked(card) -> bool:
    """Does the card name anything to refit?"""
    asked = (card.threshold, card.external, card.calibrate_on, card.calibration,
             card.refer_at_most, card.splits_from)  # fmt: skip
    return any(a is not None for a in asked)


def _scope(loaded, card):
    """(scope check, its record) fitted on a run's training split: the one `--splits-from`
    names, or the model's own run when the model has none yet; None to keep the model's."""
    from pneumocxr.evaluation.validation import run_split

    if card.splits_from is None and loaded.model.scope is not None:
        return None
    train = run_split(loaded, "train", card.splits_from)
    val = run_split(loaded, "val", card.splits_from)
    if train is None or val is None:
        log.warning(
            "this model has no scope check and no training split to fit one on (give "
            "--splits-from RUN_OR_SPLITS_CSV): it will label any image"
        )
        return None
    return fit_scope_on(loaded, train, val)


def fit_scope_on(loaded, train, val):
    """Decode a run's train and val images at the model's size and fit the scope check."""
    import time

    from pneumocxr.data.decode import decode_all
    from pneumocxr.models.scope import MAX_TRAIN, fit_scope

    size = loaded.preprocessing.image_size
    log.info("fitting the scope check on %d training images", min(len(train), MAX_TRAIN))
    started = time.perf_counter()
    train_pixels = decode_all(train["path"], size).pixels
    check = fit_scope(loaded.model, train_pixels, decode_all(val["path"], size).pixels)
    record = {
        "fit_on": f"train split ({min(len(train_pixels), MAX_TRAIN)} of {len(train_pixels)} "
        "images) and synthetic outliers made from others",
        "cut_on": f"val split ({len(val)} images)",
        "fit_seconds": round(time.perf_counter() - started, 1),
    }
    return check, record


def make_ensemble(models, out, card=None, overwrite: bool = False):
    """An ensemble of exported models (mean of logits) in the folder `out`, with its
    calibration, threshold, band and validation figures."""
    from pneumocxr.evaluation.inference import resolve_model
    from pneumocxr.evaluation.validation import Card
    from pneumocxr.models.ensemble import Ensemble
    from pneumocxr.models.io import ONNX_FORMAT, LoadedModel, save_ensemble

    members = [resolve_model(m) for m in models]
    if any(m.meta.get("format") == ONNX_FORMAT for m in members):
        raise PneumoError(
            "ensemble members must be PyTorch model folders (model.safetensors), not ONNX "
            "exports; make the ensemble, then export it with --format onnx"
        )
    if any(m.meta.get("members") for m in members):
        raise PneumoError("ensemble members must be single models, not ensembles")
    ensemble = Ensemble([m.model for m in members]).eval()
    meta = {
        "architecture": Ensemble.name,
        "preprocessing": ensemble.preprocessing().to_json(),
        "members": [{"from": Path(m.path).resolve().name} for m in members],
        "threshold_logit": 0.0,
        "threshold_method": "0.5 on the mean logit's sigmoid",
    }
    card = card or Card()
    figures = card_figures(LoadedModel(ensemble, meta, Path(out)), card)
    return save_ensemble(members, out, figures, overwrite), figures


def card_figures(loaded, card) -> dict:
    from pneumocxr.evaluation.validation import model_card_figures

    figures = model_card_figures(loaded, card)
    for name, m in figures["validation"].items():
        log.info(
            "%s validation (%s): AUC %.4f; at threshold %.3f accuracy %.4f, sensitivity %.4f, "
            "specificity %.4f", name, m["data"], m["auc"], figures["threshold"], m["accuracy"],
            m["sensitivity"], m["specificity"],
        )  # fmt: skip
    return figures


def _name(loaded) -> str:
    from pneumocxr.evaluation.inference import model_name

    return model_name(loaded)
